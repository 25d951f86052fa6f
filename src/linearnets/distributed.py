r"""Data-parallel training on ``torch.distributed`` — the few collectives the solvers need.

Launched by ``torchrun`` (it sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK)::

    torchrun --nproc-per-node 2 -m linearnets train --data shards/ --distributed ...

Backends: gloo on CPU, NCCL on CUDA (rank r uses GPU ``LOCAL_RANK``). Every collective here
is a *sum* all-reduce of one flat buffer, so each rank ends every step with the same bits:
a ring all-reduce hands every rank the same reduced chunks, and all solver decisions
(line searches, divergence checks) are then made identically everywhere.

A rank that dies (or a broken connection) makes the collectives of the others fail; they
raise :class:`~linearnets.errors.DistributedError` with one clear line instead of hanging
(gloo reports a closed peer at once; anything else hits ``timeout``).
"""

from __future__ import annotations

import math
import os
import re
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from ._io import quiet_native_stderr
from .errors import ConfigError, DistributedError

__all__ = ["Comm", "LocalComm", "LOCAL", "init_from_env"]

DEFAULT_TIMEOUT_S = 30.0


class LocalComm:
    """One process, no collectives: the communicator of a run that is not data-parallel."""

    rank, world_size = 0, 1
    device = torch.device("cpu")

    def all_reduce_(self, *tensors: Tensor) -> None:
        pass

    def sum_(self, *tensors: Tensor) -> None:
        pass

    def broadcast_object(self, obj=None):
        return obj

    def all_gather_object(self, obj) -> list:
        return [obj]

    def all_gather(self, t: Tensor) -> list[Tensor]:
        return [t]

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "LOCAL"


#: the communicator of a single process
LOCAL = LocalComm()


class Comm:
    """The process group of a data-parallel run: ``rank``, ``world_size`` and sum all-reduces."""

    def __init__(self, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device

    def all_reduce_(self, *tensors: Tensor) -> None:
        """Sum each tensor over the ranks, in place (one collective for all of them)."""
        if len(tensors) == 1 and tensors[0].is_contiguous():
            flat = tensors[0]
        else:
            flat = torch.cat([t.reshape(-1).to(tensors[0].dtype) for t in tensors])
        try:
            dist.all_reduce(flat)
        except Exception as e:        # DistBackendError, RuntimeError from gloo, timeouts
            raise self._lost(e) from None
        if flat is not tensors[0]:
            pos = 0
            for t in tensors:
                t.copy_(flat[pos:pos + t.numel()].view_as(t))
                pos += t.numel()

    def sum_(self, *tensors: Tensor) -> None:
        """Like :meth:`all_reduce_`, for tensors of possibly different dtypes (reduced in float64)."""
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
        self.all_reduce_(flat)
        pos = 0
        for t in tensors:
            t.copy_(flat[pos:pos + t.numel()].view_as(t))
            pos += t.numel()

    def broadcast_object(self, obj=None):
        """Rank 0's ``obj`` on every rank."""
        box = [obj if self.rank == 0 else None]
        try:
            dist.broadcast_object_list(box, src=0)
        except Exception as e:
            raise self._lost(e) from None
        return box[0]

    def all_gather_object(self, obj) -> list:
        out = [None] * self.world_size
        try:
            dist.all_gather_object(out, obj)
        except Exception as e:
            raise self._lost(e) from None
        return out

    def all_gather(self, t: Tensor) -> list[Tensor]:
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        try:
            dist.all_gather(out, t.contiguous())
        except Exception as e:
            raise self._lost(e) from None
        return out

    def _lost(self, e: Exception) -> DistributedError:
        first = _cause(e)
        return DistributedError(
            f"rank {self.rank} of {self.world_size}: lost contact with another rank ({first}); "
            "stopping. Rerun the job with --resume to continue from the newest checkpoint")

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def __repr__(self) -> str:
        return f"Comm(rank={self.rank}, world_size={self.world_size}, device={self.device})"


def _cause(e: Exception) -> str:
    """The backend's reason in a few words: first line, first sentence, without source paths
    ("[/.../pair.cc:537] Read error [127.0.0.1]:4021: Connection reset by peer. This is …")."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", text)
    return text.split(". ")[0][:160] or type(e).__name__


def _store(rank: int, world: int, timeout: float):
    """The rendezvous store, under a prefix of torchrun's restart count.

    After ``torchrun --max-restarts`` restarts a failed group, the new workers meet in the
    same store as the old ones; without a fresh prefix they can read the dead workers'
    addresses and fail to connect. (Under torchrun the agent hosts the store; launched by
    hand, rank 0 does.)
    """
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=rank == 0 and not agent, timeout=timedelta(seconds=timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"linearnets/attempt-{attempt}", store)


def init_from_env(device: str = "cpu", timeout_s: float | None = None) -> Comm:
    """Join the process group described by torchrun's environment variables.

    ``device``: "cpu" (gloo) or "cuda"/"auto" (NCCL, GPU ``LOCAL_RANK``). ``timeout_s``
    bounds every collective (default 30 s, or $LINEARNETS_DIST_TIMEOUT).
    """
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(f"--distributed needs the variables torchrun sets ({', '.join(missing)} missing); "
                          "launch with: torchrun --nproc-per-node P -m linearnets train ... --distributed")
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local = _env_int("LOCAL_RANK", 0) if "LOCAL_RANK" in os.environ else rank
    port = _env_int("MASTER_PORT", 1)
    if rank >= world or port > 65535:
        raise ConfigError(f"RANK={rank} must be below WORLD_SIZE={world}, and MASTER_PORT={port} at most 65535; "
                          "launch with torchrun, which sets them")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device='cuda' but no CUDA GPU is available; use --device cpu (gloo)")
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    try:
        timeout = float(timeout_s or os.environ.get("LINEARNETS_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise ConfigError(f"LINEARNETS_DIST_TIMEOUT={os.environ.get('LINEARNETS_DIST_TIMEOUT')!r} is not a number "
                          "of seconds") from None
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"the distributed timeout must be a positive number of seconds, got {timeout}")
    if not dist.is_initialized():
        try:
            with quiet_native_stderr():       # the store's C++ retry log would bury the one line that matters
                dist.init_process_group(backend, store=_store(rank, world, timeout), rank=rank, world_size=world,
                                        timeout=timedelta(seconds=timeout))
        except Exception as e:
            first = _cause(e)
            raise DistributedError(f"rank {rank} of {world}: cannot join the process group at "
                                   f"{os.environ['MASTER_ADDR']}:{port} within {timeout:g} s ({first}); is rank 0 "
                                   "running? Launch every rank with torchrun") from None
    return Comm(rank, world, dev)


def _env_int(name: str, low: int) -> int:
    value = os.environ.get(name, "")
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low:
        raise ConfigError(f"{name}={value!r} must be an integer ≥ {low}; launch with torchrun, which sets it")
    return number
