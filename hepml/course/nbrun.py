"""Executing a notebook headless: one place for how the course runner, the grader and
the tests start a kernel."""
import shutil
import tempfile


def execute_notebook(nb, cwd, timeout=3600):
    """Run every cell of ``nb`` (an nbformat node, updated in place) in a fresh kernel
    started in directory ``cwd``; raises nbclient's CellExecutionError on a failing cell.

    The kernel talks over a private IPC socket in a fresh temporary directory rather than
    TCP on localhost: nothing is exposed on the network, concurrent runs cannot collide,
    and ipykernel does not warn about unencrypted TCP."""
    import nbclient
    from jupyter_client import KernelManager
    sock_dir = tempfile.mkdtemp(prefix="hepml-kernel-")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=sock_dir + "/kernel")
    client = nbclient.NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        shutil.rmtree(sock_dir, ignore_errors=True)
    return nb
