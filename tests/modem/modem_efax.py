"""efax (Debian) as a process for the interop tests: an independent Class 1 DTE with wall-clock timers."""

from __future__ import annotations

import asyncio


async def run_efax(args: list[str], timeout: float) -> tuple[int, str]:
    """Run ``efax ARGS`` to the end; its exit status and output (stdout and stderr together)."""
    proc = await asyncio.create_subprocess_exec("efax", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"efax did not finish in {timeout} s:\n{out.decode(errors='replace')}") from None
    return proc.returncode, out.decode(errors="replace")
