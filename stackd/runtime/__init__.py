"""The container runtime: namespaces, rootfs, cgroups, process lifecycle, logs, exec."""
