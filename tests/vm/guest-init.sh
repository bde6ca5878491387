#!/bin/sh
# pid 1 of the test guest (User-Mode Linux or QEMU): the host's / read-only, cgroup v2 only.
# Runs $CORRAL_RESULTS/run.sh, leaves its exit status in $CORRAL_RESULTS/status, powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs -o mode=755 tmpfs /dev
for node in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    set -- $node
    [ -e "/dev/$1" ] || { mknod -m 666 "/dev/$1" c "$2" "$3"; }
done
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=755 tmpfs /run
# Keep a view of the host's tree before tmpfs covers /tmp and /var/tmp: the working tree
# (a checkout under /tmp, say) is bound back from it below.
mkdir -p /run/hostroot
mount --bind / /run/hostroot
for d in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o mode=1777 tmpfs "$d"; done
if [ -n "$CORRAL_GUEST_WORKDIR" ] && [ ! -d "$CORRAL_GUEST_WORKDIR" ]; then
    mkdir -p "$CORRAL_GUEST_WORKDIR"
    mount --bind "/run/hostroot$CORRAL_GUEST_WORKDIR" "$CORRAL_GUEST_WORKDIR"
fi
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
# The tests run in the root cgroup: the one group that may hold processes and still
# enable controllers for its children, so Corral's parent can go right below it.
if [ "$CORRAL_RESULTS_HOSTFS" ]; then
    mkdir -p /run/results && mount -t hostfs -o "$CORRAL_RESULTS_HOSTFS" none /run/results
    CORRAL_RESULTS=/run/results
elif [ "$CORRAL_RESULTS_9P" ]; then
    mkdir -p /run/results && mount -t 9p -o trans=virtio,version=9p2000.L results /run/results
    CORRAL_RESULTS=/run/results
fi
hostname corral-guest
sh "$CORRAL_RESULTS/run.sh" > "$CORRAL_RESULTS/output" 2>&1
echo $? > "$CORRAL_RESULTS/status"
sync
busybox poweroff -f || echo o > /proc/sysrq-trigger
