"""The machine a plan is for: detected, or described with overrides (`--gpu-memory 24GiB,24GiB --ram 192GiB`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from r1run import rpc as rpc_mod
from r1run.errors import BadInput
from r1run.hardware import metal_default_working_set
from r1run.planner import bandwidth as bw
from r1run.planner import gpus
from r1run.planner.gpus import GpuSpec
from r1run.units import GiB, size

if TYPE_CHECKING:
    from r1run.rpc import WorkerDevice

MEASURED = "measured on this machine"   # a MachineSpec's cpu_bandwidth_source when r1run measured the RAM
# For described RAM with no --bandwidth: dual-channel DDR5-5600 is 89.6 GB/s in theory, about 80 in practice.
ASSUMED_RAM_BANDWIDTH = 80e9
_SIZE = re.compile(r"\s*([\d.]+)\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)
_UNITS = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str, what: str = "size") -> int:
    """'24GiB' (binary), '24GB' (decimal), '24' (GiB) -> bytes."""
    m = _SIZE.fullmatch(text or "")
    if not m or float(m[1]) <= 0:
        raise BadInput(f"cannot read {what} {text!r}", "write it like 24GiB, 80GB or 512 (GiB)")
    unit = (m[2] or "GiB").lower()
    if unit == "b":
        return int(float(m[1]))
    return int(float(m[1]) * _UNITS[unit.removesuffix("b")])


def parse_sizes(text: str, what: str) -> list[int]:
    parts = [p for p in (text or "").split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise BadInput(f"cannot read {what} {text!r}", "a comma-separated list, e.g. 24GiB,24GiB")
    return [parse_size(p, what) for p in parts]


@dataclass(frozen=True)
class Device:
    """An accelerator llama.cpp can place layers on: a local GPU or an RPC worker's device."""

    name: str                   # llama.cpp's device name: CUDA0, MTL0, RPC0[host:port]
    kind: str                   # gpu | rpc
    label: str                  # what it is, e.g. NVIDIA GeForce RTX 4090
    free: int                   # bytes it can hold
    bandwidth: float | None     # bytes/s, None when unknown
    endpoint: str = ""          # host:port for RPC


@dataclass(frozen=True)
class MachineSpec:
    ram: int                            # host memory available to the model, bytes
    cpu_bandwidth: float                # bytes/s
    devices: tuple[Device, ...] = ()
    unified: bool = False               # Apple silicon: the GPU's memory is the same RAM
    simd: tuple[str, ...] = ()          # CPU features (decide llama.cpp's CPU repacking)
    disk_bandwidth: float = bw.DEFAULT_DISK
    gpu_margin: int = GiB               # left free on each device (llama.cpp's --fit leaves 1 GiB too)
    ram_margin: int = 2 * GiB           # for the OS and everything else
    described: str = ""                 # how it was obtained, for the report
    cpu_bandwidth_source: str = ""      # measured on this machine | vendor figure | --bandwidth | assumed
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cpu_bandwidth_measured(self) -> bool:
        """The RAM figure is r1run's own measurement here (what a program reaches), not a peak from a datasheet."""
        return self.cpu_bandwidth_source == MEASURED

    @property
    def vram(self) -> int:
        return sum(d.free for d in self.devices)


@dataclass(frozen=True)
class MachineDescription:
    """What the user said about the machine to plan for (`--gpu-memory 24GiB --ram 128GiB ...`); None: detected."""

    gpu_memory: str | None = None
    gpu_name: str | None = None
    ram: str | None = None
    unified: bool | None = None
    bandwidth: str | None = None
    device_memory: str | None = None  # RPC workers' memory, instead of asking them

    @property
    def overrides_memory(self) -> bool:
        """True when the plan is for memory other than what llama.cpp on this machine would see."""
        return any(v is not None for v in (self.gpu_memory, self.gpu_name, self.ram, self.unified,
                                           self.device_memory))


def from_hardware(machine, ram_bandwidth: float | None = None) -> MachineSpec:
    """A MachineSpec from r1run.hardware.detect()."""
    unified = any(g.vendor == "apple" for g in machine.gpus)
    devices = tuple(Device(g.device or f"GPU{i}", "gpu", g.name, g.free_bytes, bw.known_bandwidth(g.name))
                    for i, g in enumerate(machine.gpus) if g.vendor != "rpc")
    cpu_bw = bw.known_bandwidth(machine.cpu.model) if unified else None
    how = ("vendor figure" if cpu_bw else MEASURED if ram_bandwidth else
           f"assumed {ASSUMED_RAM_BANDWIDTH / 1e9:.0f} GB/s; --bandwidth cpu=... to set")
    return MachineSpec(ram=machine.ram_available if not unified else machine.ram_total,
                       cpu_bandwidth=cpu_bw or ram_bandwidth or ASSUMED_RAM_BANDWIDTH, devices=devices,
                       unified=unified, simd=tuple(machine.cpu.simd), described="detected", cpu_bandwidth_source=how)


def _named_gpu(name: str | None, gpu_memory: str | None) -> GpuSpec | None:
    """The table's row for `--gpu-name`; BadInput for a name it lacks when nothing else says the memory."""
    if not name:
        return None
    spec = gpus.lookup(name)
    if spec is None and gpu_memory is None:
        raise BadInput(f"--gpu-name {name!r} is not in r1run's GPU table, so its memory is unknown",
                       "give it with --gpu-memory 24GiB (and --bandwidth gpu=1000GB/s for a speed bound), or a "
                       "known name such as 'RTX 4090', 'H100', 'MI300X' or 'M3 Max'")
    return spec


def with_overrides(base: MachineSpec, *, gpu_memory: str | None = None, ram: str | None = None,
                   bandwidth: str | None = None, unified: bool | None = None, gpu_name: str | None = None,
                   rpc: str | None = None, device_memory: str | None = None,
                   rpc_found: Sequence[WorkerDevice] | None = None) -> MachineSpec:
    """Replace what the user described; `--gpu-memory 0` plans CPU-only.

    `rpc_found`: the workers' devices as llama.cpp reported them (r1run.rpc.ask_devices); else
    `device_memory` says their memory.
    """
    spec = base
    rates = bw.parse_bandwidth_option(bandwidth)
    named = _named_gpu(gpu_name, gpu_memory)
    desc = ([] if spec.described == "detected" and (gpu_memory or ram or named) else
            [spec.described] if spec.described else [])
    if named is not None and named.unified:  # an Apple chip: its GPU memory is the RAM
        unified = True if unified is None else unified
        if ram is None:
            ram = f"{named.memory_bytes}B"
            desc.append(f"{named.name} with {size(named.memory_bytes)} (its largest; --ram for yours)")
        else:
            desc.append(named.name)
        if "cpu" not in rates:
            spec = replace(spec, cpu_bandwidth=named.bandwidth, cpu_bandwidth_source=f"{named.name}, vendor figure")
    elif named is not None and gpu_memory is None:
        gpu_memory = f"{named.memory_bytes}B"
    if ram is not None and "cpu" not in rates and not (named and named.unified):
        # the RAM described is not this machine's: its measured bandwidth says nothing about it
        how = ("assumed: name the chip with --gpu-name (e.g. 'M2 Max') for its figure" if spec.unified or unified
               else "assumed: dual-channel DDR5; --bandwidth cpu=... to set")
        spec = replace(spec, cpu_bandwidth=ASSUMED_RAM_BANDWIDTH, cpu_bandwidth_source=how)
    if ram is not None:
        spec = replace(spec, ram=parse_size(ram, "--ram"))
        if not (named and named.unified and "largest" in desc[-1]):
            desc.append(f"RAM {size(spec.ram)}")
    if unified is not None:
        spec = replace(spec, unified=unified)
    if gpu_memory is not None:
        if gpu_memory.strip() in ("0", "none", "cpu"):
            devices: tuple[Device, ...] = ()
        else:
            sizes = parse_sizes(gpu_memory, "--gpu-memory")
            kind = "MTL" if spec.unified else "CUDA"
            label = named.name if named else gpu_name or ("Apple GPU (unified memory)" if spec.unified else "GPU")
            devices = tuple(Device(f"{kind}{i}", "gpu", label, s, rates.get("gpu") or (named and named.bandwidth)
                                   or bw.known_bandwidth(label)) for i, s in enumerate(sizes))
        spec = replace(spec, devices=devices + tuple(d for d in spec.devices if d.kind == "rpc"))
        desc.append(f"GPU {' + '.join(size(x) for x in sizes) if devices else 'none'}"
                    f"{f' ({label})' if devices and (named or gpu_name) else ''}")
    elif spec.unified and ram is not None and not any(d.kind == "gpu" for d in spec.devices):
        ws = metal_default_working_set(spec.ram, 0)
        spec = replace(spec, devices=(Device("MTL0", "gpu", named.name if named else gpu_name or "Apple GPU "
                                             "(unified memory)", ws, rates.get("gpu") or (named and named.bandwidth)
                                             or bw.known_bandwidth(gpu_name or "")),))
        desc.append(f"Metal working set {size(ws)} (macOS default share)")
    if rpc:
        workers = rpc_devices_found(rpc_found) if rpc_found is not None else rpc_devices(rpc, device_memory)
        # llama.cpp puts RPC devices before local GPUs (src/llama.cpp: "add RPC servers at the front of the
        # list"): its tensor split and layer order follow that order, so the plan does too.
        spec = replace(spec, devices=workers + tuple(d for d in spec.devices if d.kind != "rpc"))
        desc.append(f"RPC {rpc}")
    if "cpu" in rates:
        spec = replace(spec, cpu_bandwidth=rates["cpu"], cpu_bandwidth_source="--bandwidth")
    if "gpu" in rates:
        spec = replace(spec, devices=tuple(replace(d, bandwidth=rates["gpu"]) if d.kind == "gpu" else d
                                           for d in spec.devices))
    if "disk" in rates:
        spec = replace(spec, disk_bandwidth=rates["disk"])
    if spec.unified:
        spec = replace(spec, devices=tuple(replace(d, bandwidth=d.bandwidth or spec.cpu_bandwidth)
                                           for d in spec.devices))
    return replace(spec, described=", ".join(d for d in desc if d) or spec.described)


def parse_rpc(text: str) -> list[str]:
    """'host:port,host:port' -> endpoints; BadInput for a malformed entry or a port outside 1-65535."""

    return [str(ep) for ep in rpc_mod.parse(text)]


def rpc_devices(rpc: str, device_memory: str | None) -> tuple[Device, ...]:
    """RPC workers' devices; memory from `--device-memory host:port=24GiB,...` (or one size for all)."""
    endpoints = parse_rpc(rpc)
    sizes: dict[str, int] = {}
    default: int | None = None
    for part in (device_memory or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.rpartition("=")
        if sep:
            sizes[key.strip()] = parse_size(value, "--device-memory")
        else:
            default = parse_size(part, "--device-memory")
    missing = [e for e in endpoints if e not in sizes and default is None]
    if missing:
        raise BadInput(f"no memory known for RPC worker {missing[0]}",
                       "give it with --device-memory HOST:PORT=SIZE (or one SIZE for all workers), or let r1run ask "
                       "the workers (needs a llama.cpp build with --list-devices)")
    return tuple(Device(f"RPC{i}[{e}]", "rpc", f"RPC worker {e}", sizes.get(e, default or 0), None, e)
                 for i, e in enumerate(endpoints))


def rpc_devices_found(found: Sequence[WorkerDevice]) -> tuple[Device, ...]:
    """Devices from what the workers reported: one per RPC device (a worker may offer several GPUs)."""
    return tuple(Device(f"{w.name}[{w.endpoint}]", "rpc", f"RPC worker {w.endpoint}", w.free_bytes, None, w.endpoint)
                 for w in found)
