"""Which parameters belong to which unit: the layout a recycling remedy works on."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

from relujax import _validation
from relujax import init as _init

#: How a flattened axis of ``units * r`` rows maps a row to its unit (``r`` positions).
FLATTEN_ORDERS = ("channels_last", "channels_first")

Path = tuple[str, ...]


def as_path(path: str | int | Sequence[str | int], *, name: str = "path") -> Path:
    """A parameter path as a tuple of strings, from ``"a/0/kernel"`` or ``("a", 0, "kernel")``."""
    if isinstance(path, str):
        parts = tuple(p for p in path.split("/") if p)
    elif isinstance(path, int):
        parts = (str(path),)
    elif isinstance(path, Sequence):
        parts = tuple(str(p) for p in path)
    else:
        raise TypeError(
            f"{name} must be a '/'-separated string or a sequence of keys, got {path!r}."
        )
    if not parts:
        raise ValueError(f"{name} must name at least one key, got {path!r}.")
    return parts


def key_str(entry: Any) -> str:
    """One entry of a JAX key path as a string (dict key, sequence index or attribute name)."""
    if isinstance(entry, DictKey):
        return str(entry.key)
    if isinstance(entry, SequenceKey):
        return str(entry.idx)
    if isinstance(entry, GetAttrKey):
        return entry.name
    if isinstance(entry, FlattenedIndexKey):
        return str(entry.key)
    return str(entry)


def leaf_paths(tree: Any) -> list[Path]:
    """The path of every leaf of ``tree``, in ``jax.tree.leaves`` order.

    A final ``.value`` attribute (how a Flax NNX ``Variable`` in an ``nnx.State`` flattens)
    is dropped, so ``layers/0/kernel`` names the kernel both in ``nnx.state(model)`` and in
    its pure form.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = []
    for path, _ in flat:
        if path and isinstance(path[-1], GetAttrKey) and path[-1].name == "value":
            path = path[:-1]
        out.append(tuple(key_str(k) for k in path))
    return out


@functools.cache
def _named(name: str) -> Callable[..., Any]:
    return _init.get(name)


def _initializer(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """The initializer of a name (one shared object per name) or a callable."""
    if isinstance(spec, str):
        return _named(spec)
    if callable(spec):
        return spec
    raise TypeError(f"kernel_init must be a relujax.init name or an initializer, got {spec!r}.")


@dataclasses.dataclass(frozen=True)
class Layer:
    r"""The parameters of one layer of units, as a recycling remedy sees them.

    Unit ``j`` of the layer *reads* ``kernel[..., j]`` and ``bias[j]`` (its incoming
    weights; the unit axis is the kernel's last, as in Flax's ``(*window, in, out)``
    layout) and *feeds* ``w[..., rows(j), :]`` of every array ``w`` in ``outgoing``, along
    ``outgoing_axis`` (the fan-in axis of the next Dense or Conv kernel, ``-2``).

    When that axis has ``units * r`` rows, the layer's output was flattened before the next
    layer (``conv -> flatten -> dense``) and each unit (channel) owns ``r`` rows:

    - ``flatten="channels_last"``: row ``f`` belongs to unit ``f % units``, what
      ``x.reshape(n, -1)`` of an ``(N, *spatial, C)`` activation gives (Flax, JAX);
    - ``flatten="channels_first"``: row ``f`` belongs to unit ``f // r``, as after a
      ``(N, C, *spatial)`` flatten (PyTorch's layout).

    Attributes:
      kernel: path of the incoming kernel, re-drawn with ``kernel_init`` for recycled units.
      bias: path of the incoming bias (set to 0, or to the joint draw of a paired
        initializer such as RAI), or None for a layer without bias.
      outgoing: paths of the arrays that read the units (zeroed for recycled units).
      kernel_init: initializer of fresh incoming weights: a :mod:`relujax.init` name or an
        initializer ``(key, shape, dtype)``; a :class:`relujax.init.PairedInitializer`
        also gives the bias. A name is kept as given (layouts built from the same names
        are equal, so a jitted function keyed on the layout is not compiled again).
      flatten: ``"channels_last"`` or ``"channels_first"`` (see above).
      outgoing_axis: the unit axis of the outgoing arrays.
      site: the name of the layer's activation site in :mod:`relujax.analysis` statistics,
        or None to match sites by position.
      outgoing_bias: the bias of each ``outgoing`` array's layer (the next layer's bias,
        along that array's last axis), where :func:`continual_backprop` moves a replaced
        unit's mean contribution; ``()`` when there is none.

    Examples:
      >>> from relujax import remedies
      >>> layer = remedies.Layer("layers/0/kernel", "layers/0/bias", ["layers/1/kernel"])
      >>> layer.kernel, layer.outgoing
      (('layers', '0', 'kernel'), (('layers', '1', 'kernel'),))
    """

    kernel: Path
    bias: Path | None
    outgoing: tuple[Path, ...]
    kernel_init: str | Callable[..., Any] = "he_normal"
    flatten: str = "channels_last"
    outgoing_axis: int = -2
    site: str | None = None
    outgoing_bias: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", as_path(self.kernel, name="kernel"))
        if self.bias is not None:
            object.__setattr__(self, "bias", as_path(self.bias, name="bias"))
        if isinstance(self.outgoing, (str, int)) or not isinstance(self.outgoing, Sequence):
            raise TypeError(f"outgoing must be a sequence of paths, got {self.outgoing!r}.")
        object.__setattr__(
            self, "outgoing", tuple(as_path(p, name="outgoing") for p in self.outgoing)
        )
        _initializer(self.kernel_init)  # an unknown name fails here, not when recycling
        _validation.choice("flatten", self.flatten, FLATTEN_ORDERS)
        _validation.integer("outgoing_axis", self.outgoing_axis)
        if self.site is not None and not isinstance(self.site, str):
            raise TypeError(f"site must be a site name (str) or None, got {self.site!r}.")
        if isinstance(self.outgoing_bias, (str, int)) or not isinstance(
            self.outgoing_bias, Sequence
        ):
            raise TypeError(
                f"outgoing_bias must be a sequence of paths, got {self.outgoing_bias!r}."
            )
        object.__setattr__(
            self,
            "outgoing_bias",
            tuple(as_path(p, name="outgoing_bias") for p in self.outgoing_bias),
        )
        if self.outgoing_bias and len(self.outgoing_bias) != len(self.outgoing):
            raise ValueError(
                "outgoing_bias must give one bias per outgoing array (or none), got "
                f"{len(self.outgoing_bias)} for {len(self.outgoing)}."
            )

    @property
    def initializer(self) -> Callable[..., Any]:
        """``kernel_init`` as an initializer (a name resolved with :func:`relujax.init.get`)."""
        return _initializer(self.kernel_init)

    @property
    def paired(self) -> bool:
        """Whether ``kernel_init`` draws the kernel and the bias jointly (RAI)."""
        return isinstance(self.initializer, _init.PairedInitializer)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The recyclable layers of a network, in the order of its activation sites.

    A ``Layout`` is static (hashable): build it once, close over it or pass it as a static
    argument, and recycle with masks that are arrays, so a changing set of dormant units
    never triggers a recompilation. Build one with :func:`sequential` for a parameter
    pytree or with :func:`layout_of` for a :mod:`relujax.nn` model.

    Attributes:
      layers: the :class:`Layer` of every hidden layer, in forward order.

    Examples:
      >>> from relujax import remedies
      >>> layout = remedies.sequential(["layers/0", "layers/1", "layers/2"])
      >>> len(layout.layers), layout.layers[1].outgoing
      (2, (('layers', '2', 'kernel'),))
    """

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a remedies.Layer, got {layer!r}.")
        object.__setattr__(self, "layers", layers)

    def units(self, params: Any) -> tuple[int, ...]:
        """Number of units of each layer, read from the shapes in ``params``.

        Args:
          params: the parameter pytree the layout describes.

        Returns:
          One int per layer.

        Raises:
          ValueError: if a path is missing or the shapes do not fit together.
        """
        shapes = dict(
            zip(
                leaf_paths(params),
                (jax.numpy.shape(x) for x in jax.tree.leaves(params)),
                strict=True,
            )
        )
        return tuple(_check_layer(i, layer, shapes) for i, layer in enumerate(self.layers))


def _lookup(shapes: dict[Path, tuple[int, ...]], path: Path, what: str) -> tuple[int, ...]:
    try:
        return shapes[path]
    except KeyError:
        known = ", ".join("/".join(p) for p in shapes)
        raise ValueError(
            f"{what} path {'/'.join(path)!r} is not a leaf of the parameters; leaves are: {known}."
        ) from None


def _check_layer(i: int, layer: Layer, shapes: dict[Path, tuple[int, ...]]) -> int:
    kernel = _lookup(shapes, layer.kernel, f"layers[{i}].kernel")
    if len(kernel) < 2:
        raise ValueError(
            f"layers[{i}].kernel {'/'.join(layer.kernel)!r} must be at least 2-D "
            f"(*window, in, units), got shape {kernel}."
        )
    units = kernel[-1]
    if layer.bias is not None:
        bias = _lookup(shapes, layer.bias, f"layers[{i}].bias")
        if bias != (units,):
            raise ValueError(
                f"layers[{i}].bias {'/'.join(layer.bias)!r} has shape {bias}; the kernel has "
                f"{units} units, so it must be ({units},)."
            )
    for path in layer.outgoing:
        shape = _lookup(shapes, path, f"layers[{i}].outgoing")
        axis = layer.outgoing_axis
        if not -len(shape) <= axis < len(shape):
            raise ValueError(
                f"layers[{i}].outgoing {'/'.join(path)!r} of shape {shape} has no axis {axis}."
            )
        rows = shape[axis]
        if rows % units:
            raise ValueError(
                f"layers[{i}].outgoing {'/'.join(path)!r} has {rows} rows on axis {axis}, "
                f"not a multiple of the layer's {units} units."
            )
    for path in layer.outgoing_bias:
        shape = _lookup(shapes, path, f"layers[{i}].outgoing_bias")
        if len(shape) != 1:
            raise ValueError(
                f"layers[{i}].outgoing_bias {'/'.join(path)!r} must be 1-D, got shape {shape}."
            )
    return units


def sequential(
    layers: Sequence[str | Sequence[str | int]],
    *,
    kernel: str = "kernel",
    bias: str | None = "bias",
    kernel_init: str | Callable[..., Any] = "he_normal",
    flatten: str = "channels_last",
) -> Layout:
    """The layout of a feed-forward stack: each layer's units feed the next layer's kernel.

    ``layers`` lists the paths of the Dense / Conv layers in forward order, output layer
    last; every layer but the last is a layer of units (it is followed by an activation),
    whose outgoing weights are the next layer's kernel (and outgoing bias the next layer's
    bias). This covers plain parameter
    pytrees of MLPs and CNNs (``conv -> conv -> flatten -> dense``: ``flatten`` says how the
    flattened rows map to channels) and Flax Linen ``params`` dicts.

    Args:
      layers: paths of the layers (subtrees holding ``kernel`` and ``bias``), in order.
      kernel: name of the kernel leaf inside each layer.
      bias: name of the bias leaf, or None when the layers have none.
      kernel_init: initializer of fresh incoming weights, for every layer.
      flatten: ``"channels_last"`` or ``"channels_first"``, see :class:`Layer`.

    Returns:
      A :class:`Layout` with ``len(layers) - 1`` layers.

    Raises:
      ValueError: with fewer than two layers.

    Examples:
      >>> from relujax import remedies
      >>> params = [{"w": 1, "b": 2}, {"w": 3, "b": 4}]  # a 1-hidden-layer MLP as a list
      >>> layout = remedies.sequential([0, 1], kernel="w", bias="b")
      >>> layout.layers[0].kernel, layout.layers[0].outgoing
      (('0', 'w'), (('1', 'w'),))
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence of layer paths, got {layers!r}.")
    paths = [as_path(p, name=f"layers[{i}]") for i, p in enumerate(layers)]
    if len(paths) < 2:
        raise ValueError(
            f"layers must list at least two layers (hidden ..., output), got {len(paths)}."
        )
    _initializer(kernel_init)
    return Layout(
        tuple(
            Layer(
                (*here, kernel),
                None if bias is None else (*here, bias),
                ((*after, kernel),),
                kernel_init=kernel_init,
                flatten=flatten,
                outgoing_bias=() if bias is None else ((*after, bias),),
            )
            for here, after in itertools.pairwise(paths)
        )
    )


def layout_of(model: Any, *, kernel_init: str | Callable[..., Any] = "he_normal") -> Layout:
    """The layout of a :class:`relujax.nn.MLP` or :class:`relujax.nn.CNN`.

    Both keep their Linear / Conv layers in ``model.layers`` (the last is the output) and
    apply one activation after each of the others, so hidden layer ``i``'s units are the
    channels of ``layers[i]`` and feed ``layers[i + 1].kernel`` (the CNN's global average
    pooling keeps channel identity). Paths are those of ``nnx.state(model, nnx.Param)``.

    The modules do not record the initializer they were built with; give the same one here
    (``kernel_init="rai"`` for an RAI-initialized model).

    Args:
      model: a relujax.nn ``MLP`` or ``CNN`` (any module whose ``layers`` is a sequence of
        modules with ``kernel`` and ``bias``).
      kernel_init: initializer of fresh incoming weights.

    Returns:
      A :class:`Layout`.

    Raises:
      TypeError: if ``model`` has no ``layers`` sequence of at least two layers.

    Examples:
      >>> import relujax
      >>> from flax import nnx
      >>> model = relujax.nn.MLP(2, [16, 16], 1, rngs=nnx.Rngs(0))
      >>> [layer.kernel for layer in relujax.remedies.layout_of(model).layers]
      [('layers', '0', 'kernel'), ('layers', '1', 'kernel')]
    """
    layers = getattr(model, "layers", None)
    if layers is None or len(layers) < 2:
        raise TypeError(
            "layout_of needs a relujax.nn MLP or CNN (a module whose `layers` holds at least "
            f"two Linear/Conv layers), got {type(model).__name__}; build a Layout with "
            "remedies.sequential(...) for other models."
        )
    bias = "bias" if all(getattr(layer, "bias", None) is not None for layer in layers) else None
    return sequential(
        [("layers", i) for i in range(len(layers))], bias=bias, kernel_init=kernel_init
    )
