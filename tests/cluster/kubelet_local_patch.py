#!/usr/bin/env python3
"""Make the v1.20 kubelet fit a throwaway node that shares its machine with others.

    kubelet_local_patch.py SOURCE_TREE

Upstream v1.20 has two machine-wide habits that two local nodes (a test run and dev/stack.sh,
or CI and a developer) cannot share:

* it keeps pod logs in /var/log/pods and links them from /var/log/containers, fixed paths;
  its container GC deletes every pod log directory there whose pod it does not know, so one
  node deletes the logs of the other's running pods. With TJF_KUBELET_LOG_ROOT set, the
  kubelet uses $TJF_KUBELET_LOG_ROOT/pods and $TJF_KUBELET_LOG_ROOT/containers instead.
* it sets kernel tunables (vm.overcommit_memory, vm.panic_on_oom, kernel.panic,
  kernel.panic_on_oops, kernel.keys.*) for the whole machine and never restores them. With
  TJF_KUBELET_KEEP_SYSCTLS set, it leaves them alone.

Without the variables the kubelet behaves as upstream's. Edits are checked: a source that
does not look as expected stops the build.
"""

import pathlib
import sys


def edit(path, old, new):
    text = path.read_text()
    if text.count(old) != 1:
        sys.exit(f"kubelet_local_patch: {path} does not contain the expected text once: {old!r}")
    path.write_text(text.replace(old, new))
    print(f"kubelet_local_patch: edited {path.relative_to(root)}")


def write(path, text):
    path.write_text(text)
    print(f"kubelet_local_patch: wrote {path.relative_to(root)}")


HEADER = "// Added by tests/cluster/kubelet_local_patch.py (the local test node's kubelet).\n\n"

LOG_ROOT_FUNC = '''
// tjfLogRoot is /var/log/<leaf>, or $TJF_KUBELET_LOG_ROOT/<leaf> when that is set.
func tjfLogRoot(leaf string) string {
	if root := os.Getenv("TJF_KUBELET_LOG_ROOT"); root != "" {
		return filepath.Join(root, leaf)
	}
	return filepath.Join("/var/log", leaf)
}
'''

if len(sys.argv) != 2:
    sys.exit(__doc__)
root = pathlib.Path(sys.argv[1])
kuberuntime = root / "pkg/kubelet/kuberuntime"

edit(
    kuberuntime / "kuberuntime_manager.go",
    '\t// The root directory for pod logs\n\tpodLogsRootDirectory = "/var/log/pods"\n',
    "",
)
edit(
    kuberuntime / "legacy.go",
    '\t// legacyContainerLogsDir is the legacy location of container logs. It is the same with\n'
    '\t// kubelet.containerLogsDir.\n\tlegacyContainerLogsDir = "/var/log/containers"\n',
    "",
)
write(
    kuberuntime / "tjf_local.go",
    HEADER
    + 'package kuberuntime\n\nimport (\n\t"os"\n\t"path/filepath"\n)\n\n'
    + "// The root directory for pod logs.\nvar podLogsRootDirectory = tjfLogRoot(\"pods\")\n\n"
    + "// legacyContainerLogsDir is the legacy location of container logs, the same as\n"
    + "// kubelet.ContainerLogsDir.\nvar legacyContainerLogsDir = tjfLogRoot(\"containers\")\n"
    + LOG_ROOT_FUNC,
)
edit(
    root / "pkg/kubelet/kubelet.go",
    '\t// ContainerLogsDir is the location of container logs.\n\tContainerLogsDir = "/var/log/containers"\n',
    "",
)
write(
    root / "pkg/kubelet/tjf_local.go",
    HEADER
    + 'package kubelet\n\nimport (\n\t"os"\n\t"path/filepath"\n)\n\n'
    + "// ContainerLogsDir is the location of container logs.\nvar ContainerLogsDir = tjfLogRoot(\"containers\")\n"
    + LOG_ROOT_FUNC,
)
edit(
    root / "pkg/kubelet/cm/container_manager_linux.go",
    "func setupKernelTunables(option KernelTunableBehavior) error {\n",
    "func setupKernelTunables(option KernelTunableBehavior) error {\n"
    "\t// a local test node leaves the machine's kernel settings alone\n"
    '\tif os.Getenv("TJF_KUBELET_KEEP_SYSCTLS") != "" {\n\t\treturn nil\n\t}\n',
)
