"""Compact weight files for fine-tuned encoders: only what changed, as row-wise int8 deltas.

Fine-tuning a pre-trained encoder moves every weight a little; storing the result in full
repeats the base model. :func:`encode_weights` keeps, per tensor, only the difference from the
base, quantised to int8 with one scale per row (the rounding error is at most 1/254 of that
row's largest change, far below the change itself), only the rows that changed (embedding rows
of words never seen in training stay untouched), rows appended to the base (new vocabulary)
and tensors the base lacks (the head) in full. :func:`decode_weights` rebuilds the state dict.

Example:
    >>> import torch
    >>> base = {"w": torch.zeros(2, 5000)}
    >>> stored = encode_weights({"w": torch.ones(2, 5000)}, base)
    >>> sorted(stored)
    ['delta:w', 'scale:w']
    >>> bool(torch.allclose(decode_weights(stored, base)["w"], torch.ones(2, 5000)))
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from insightray.errors import ConfigError, CorruptFileError

__all__ = ["decode_weights", "encode_weights", "read_weights"]

_SMALL = 4096  # tensors up to this many values (biases, norms) are always stored exactly


def _stored(tensor: torch.Tensor) -> torch.Tensor:
    """Large floating tensors go to float16, small ones stay float32."""
    value = tensor.detach().cpu().contiguous()
    if value.is_floating_point():
        return value.half() if value.numel() > _SMALL else value.float()
    return value


def encode_weights(
    state: Mapping[str, torch.Tensor],
    base: Mapping[str, torch.Tensor] | None = None,
    delta_dtype: str = "int8",
) -> dict[str, torch.Tensor]:
    """Encode ``state`` as the difference from ``base`` (``None``: everything in full).

    Keys are ``full:NAME`` (the value), ``delta:NAME`` with ``scale:NAME`` (row-wise int8) or
    a float16 ``delta:NAME``, ``rows:NAME`` (which rows changed, when not all) and
    ``extra:NAME`` (rows appended to the base, e.g. new vocabulary). Unchanged tensors are
    left out; :func:`decode_weights` inverts this.

    Example:
        >>> base = {"w": torch.zeros(3, 2)}
        >>> sorted(encode_weights({"w": torch.ones(4, 2)}, base))
        ['full:w']
    """
    if delta_dtype not in ("int8", "float16"):
        raise ConfigError("delta_dtype", f"unknown {delta_dtype!r}", "use 'int8' or 'float16'")
    out: dict[str, torch.Tensor] = {}
    for name, raw in state.items():
        tensor = raw.detach().cpu()
        ref = None if base is None else base.get(name)
        grows = ref is not None and tensor.ndim >= 1 and ref.ndim == tensor.ndim
        if (
            ref is None
            or not tensor.is_floating_point()
            or tensor.numel() <= _SMALL
            or not grows
            or tensor.shape[1:] != ref.shape[1:]
            or tensor.shape[0] < ref.shape[0]
        ):
            if ref is None or not torch.equal(tensor, ref.to(tensor.dtype)):
                out[f"full:{name}"] = _stored(tensor)
            continue
        kept = ref.shape[0]
        if tensor.shape[0] > kept:
            out[f"extra:{name}"] = _stored(tensor[kept:])
        delta = (tensor[:kept].float() - ref.float()).reshape(kept, -1)
        changed = delta.abs().amax(dim=1) > 0
        if not changed.any():
            continue
        if not changed.all():
            rows = torch.nonzero(changed).flatten()
            out[f"rows:{name}"] = rows.to(torch.int64)
            delta = delta[rows]
        if delta_dtype == "float16":
            out[f"delta:{name}"] = delta.half().contiguous()
            continue
        scale = delta.abs().amax(dim=1) / 127.0
        out[f"scale:{name}"] = scale.float().contiguous()
        out[f"delta:{name}"] = torch.round(delta / scale.clamp(min=1e-30)[:, None]).to(torch.int8)
    return out


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (as :func:`encode_weights` wrote them).

    Raises:
        CorruptFileError: The file cannot be read as safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CorruptFileError(str(path), "not a readable safetensors file", "re-save") from error


def decode_weights(
    stored: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Rebuild a float32 state dict from :func:`encode_weights` output and the same base.

    Example:
        >>> base = {"w": torch.zeros(2, 5000)}
        >>> state = {"w": torch.ones(2, 5000)}
        >>> bool(torch.allclose(decode_weights(encode_weights(state, base), base)["w"], state["w"]))
        True
    """
    state = {name: value.detach().clone() for name, value in (base or {}).items()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    for key, value in stored.items():
        kind, _, name = key.partition(":")
        if kind == "full":
            state[name] = value.float() if value.is_floating_point() else value.clone()
        elif kind == "delta":
            if name not in state:
                raise CorruptFileError(name, "a delta without its base tensor", "use its base")
            target = state[name]
            flat = target.reshape(target.shape[0], -1)
            change = value.float()
            if f"scale:{name}" in stored:
                change = change * stored[f"scale:{name}"].float()[:, None]
            rows = stored.get(f"rows:{name}")
            if rows is None:
                flat += change
            else:
                flat[rows.long()] += change
        elif kind not in ("scale", "rows", "extra"):
            raise CorruptFileError(key, "unknown entry in a weights file", "re-save the model")
    for key, value in stored.items():
        kind, _, name = key.partition(":")
        if kind == "extra":
            state[name] = torch.cat([state[name], value.float()], dim=0)
    return state
