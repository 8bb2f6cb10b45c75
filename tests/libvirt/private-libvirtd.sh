#!/bin/sh
# Runs a private, root libvirtd for the tests: no systemd, nothing shared with a system
# libvirt. Usage: private-libvirtd.sh DIR  (DIR: an empty directory the caller owns)
#
# libvirt's privileged daemon keeps its state under fixed paths (/etc/libvirt,
# /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt). This script
# gives it a mount namespace of its own in which each of them is a tmpfs, writes the
# daemon's and the QEMU driver's configuration there, and execs libvirtd in the
# foreground. Its socket is DIR/sock/libvirt-sock, outside the namespace, so a client
# connects with `virsh -c 'qemu:///system?socket=DIR/sock/libvirt-sock'`. Killing
# libvirtd (SIGTERM) ends the namespace and every file in it; QEMU processes it
# started are killed by the caller (`virsh destroy`, or their pid files under
# DIR/run).
set -eu
dir=$1
mkdir -p "$dir/sock" "$dir/log"
exec unshare --mount --propagation private /bin/sh -eu -c '
dir=$1
for d in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0755 morgana-libvirt "$d"
done
mkdir -p /etc/libvirt/qemu /var/log/libvirt/qemu
# passt, started as root by the QEMU driver, drops to nobody before it writes its pid
# file into this directory: let it.
mkdir -p /run/libvirt/qemu/passt
chmod 1777 /run/libvirt/qemu/passt
# Expose the QEMU driver state (pid files, monitor sockets) to the caller.
mount --bind "$dir/log" /var/log/libvirt/qemu
cat > /etc/libvirt/libvirtd.conf <<CONF
unix_sock_dir = "$dir/sock"
unix_sock_group = "root"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
CONF
# QEMU as root, no cgroups, no security driver, no private /dev: a test machine
# without systemd (a container, CI). A production host keeps the defaults.
cat > /etc/libvirt/qemu.conf <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
CONF
echo "uri_default = \"qemu:///system\"" > /etc/libvirt/libvirt.conf
exec libvirtd --config /etc/libvirt/libvirtd.conf
' private-libvirtd "$dir"
