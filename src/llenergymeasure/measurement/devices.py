"""Which devices an experiment actually uses, as the inference backend reports them.

The backend knows where it put the model (a CUDA index); CUDA and NVML may number GPUs
differently (``CUDA_VISIBLE_DEVICES``, ``CUDA_DEVICE_ORDER``), so a GPU is identified across
the two by its UUID, read from torch. Energy sources measure exactly these devices.

Nothing here imports torch: the backend passes its already imported module in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DeviceRef:
    """One device the model runs on."""

    kind: Literal["cuda", "cpu"]
    cuda_index: int | None = None
    """torch's index (``cuda:N``), in the numbering of this process's CUDA_VISIBLE_DEVICES."""
    uuid: str | None = None
    """NVML's form, ``GPU-...`` (or ``MIG-...`` for a MIG instance); None when unknown."""
    name: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "cpu":
            return "cpu"
        return f"cuda:{self.cuda_index} {self.name or 'GPU'} ({self.uuid or 'uuid unknown'})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cuda_index": self.cuda_index,
            "uuid": self.uuid,
            "name": self.name,
        }


CPU = DeviceRef("cpu")


def nvml_uuid(raw: Any) -> str | None:
    """torch's ``device_properties.uuid`` in NVML's ``GPU-xxxxxxxx-...`` form (None if empty)."""
    text = str(raw or "").strip()
    if not text:
        return None
    if text.startswith(("GPU-", "MIG-")):
        return text
    return f"GPU-{text}"


def cuda_device_ref(torch: Any, index: int) -> DeviceRef:
    """The CUDA device ``index`` as torch sees it, with its UUID when torch can tell."""
    uuid: str | None = None
    name: str | None = None
    try:
        props = torch.cuda.get_device_properties(index)
        name = str(props.name)
        uuid = nvml_uuid(getattr(props, "uuid", None))
    except Exception:  # an old torch without uuid, or a driver hiccup: report what is known
        uuid = uuid or None
    return DeviceRef("cuda", cuda_index=index, uuid=uuid, name=name)


def gpu_devices(devices: tuple[DeviceRef, ...] | None) -> tuple[DeviceRef, ...] | None:
    """The CUDA devices among ``devices`` (None stays None: the caller did not say)."""
    if devices is None:
        return None
    return tuple(d for d in devices if d.kind == "cuda")
