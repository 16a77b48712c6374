"""The kernels the archive's server starts: without the server's memory cap."""

from __future__ import annotations

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

from .core.memory import uncap_memory

#: Jupyter's own kernel manager class, which the archive's replaces (a configured one is left as it is).
JUPYTER_KERNEL_MANAGER = "jupyter_server.services.kernels.kernelmanager.ServerKernelManager"


class UncappedKernelManager(ServerKernelManager):
    """Jupyter's kernel manager, whose kernels (started or restarted) get the memory limit the server had before its
    cap (``ArchiveApp.process_memory_limit``): the cap is for the queries the server runs, not for a user's
    notebook, which may hold what the machine allows as it would outside the archive."""

    async def _async_post_start_kernel(self, **kw) -> None:
        uncap_memory(getattr(self.provisioner, "pid", None))  # a local kernel's process; a remote one has none here
        await super()._async_post_start_kernel(**kw)
