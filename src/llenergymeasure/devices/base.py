"""What identifies a device, and what may be asked of an opened GPU.

The backend knows where it put the model (a CUDA index); CUDA and NVML may number GPUs
differently (``CUDA_VISIBLE_DEVICES``, ``CUDA_DEVICE_ORDER``), so a GPU is identified across
the two by its UUID, read from torch (``DeviceRef``). Energy sources measure exactly these
devices, through the ``GPU`` Protocol a vendor module implements.

Nothing here imports torch or a vendor library: the backend passes its torch module in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


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


class GPU(Protocol):
    """One opened physical GPU, as a vendor module (``devices/nvidia.py``) presents it.

    Identity (the vendor's index, UUID, name, the CUDA index the model knows it by, and
    whether it is a MIG parent measured whole) and what a measurement reads from it. Units
    are in the names; a query the GPU lacks answers None, a failure raises an LLEMError.
    """

    @property
    def index(self) -> int:
        """The vendor library's index of the physical GPU."""

    @property
    def label(self) -> str:
        """How results name it: ``cuda:0 NVIDIA H100 (index 3)``."""

    @property
    def uuid(self) -> str | None: ...

    @property
    def mig_enabled(self) -> bool:
        """In MIG mode (then the whole physical GPU, every instance, is what is read)."""

    def energy_mj(self) -> int | None:
        """The cumulative energy counter in mJ; None when the GPU has none."""

    def instant_power_w(self) -> float | None:
        """Instantaneous power, or None when the GPU or driver does not report it."""

    def averaged_power_w(self) -> float:
        """Power averaged by the driver (it may lag the load)."""

    def power_w(self) -> float:
        """Instant power where the GPU reports it, else the averaged reading."""

    def temperature_c(self) -> float | None: ...

    def clock_limit_mask(self) -> int:
        """The reasons limiting clocks now, as the vendor's bitmask (OR-able over time)."""

    def state(self) -> dict[str, Any]:
        """Performance state, clocks, temperature and power now (JSON-ready)."""

    def processes(self) -> list[dict[str, Any]]:
        """Every compute process on the GPU: ``pid`` and ``used_gpu_memory_bytes``."""

    def record(self) -> dict[str, Any]:
        """Its identity, JSON-ready, for the result."""
