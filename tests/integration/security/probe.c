/* Escape probe: tries one thing a confined container must not do, and says whether
 * the kernel let it through.
 *
 *   probe <action> [arg]
 *
 * Prints "allowed <action>" or "denied <action>: <errno name>" and exits 0 (allowed),
 * 1 (denied: EPERM, EACCES, EROFS, or the thing hidden) or 2 (unexpected error).
 * "Allowed" means the call got past every permission check: actions are chosen so that
 * even then nothing on the host changes (the hostname and sysctl are written with
 * their current value, sysrq-trigger is only opened, kcore only read, the module
 * image is empty, reboot asks for something a PID namespace refuses with EINVAL).
 * Also: "openw PATH" (open for writing, never write) and "read PATH" (4 bytes).
 * Built with gcc -static by the test fixture; the busybox image has no libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>
#include <linux/reboot.h>

static const char *action;

static int denied_errno(int e) {
    return e == EPERM || e == EACCES || e == EROFS;
}

static int result(int rc, int err) {
    if (rc == 0) {
        printf("allowed %s\n", action);
        return 0;
    }
    printf("%s %s: %s\n", denied_errno(err) ? "denied" : "error", action, strerrorname_np(err));
    return denied_errno(err) ? 1 : 2;
}

/* Got past the permission checks if the kernel said anything but "not permitted". */
static int reached(int rc, int err) {
    if (rc == 0 || !denied_errno(err)) {
        printf("allowed %s (%s)\n", action, rc == 0 ? "ok" : strerrorname_np(err));
        return 0;
    }
    return result(rc, err);
}

static int do_mount(void) {
    mkdir("/tmp/probe-mnt", 0700);
    int rc = mount("probe", "/tmp/probe-mnt", "tmpfs", 0, "size=4k");
    int err = errno;
    if (rc == 0)
        umount("/tmp/probe-mnt");
    return result(rc, err);
}

static int do_reboot(void) {
    /* In a PID namespace the kernel answers EINVAL for CAD_OFF once CAP_SYS_BOOT is
     * granted; in the host's it would turn off Ctrl-Alt-Del, so only PID 1 (the
     * container's first process) may try. */
    if (getpid() != 1) {
        fprintf(stderr, "probe: reboot only runs as a container's PID 1\n");
        return 2;
    }
    int rc = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                     LINUX_REBOOT_CMD_CAD_OFF, NULL);
    return reached(rc, errno);
}

static int do_module(void) {
    /* An empty image: a kernel that lets us this far answers ENOEXEC/EFAULT (or
     * ENOSYS without module support). */
    int rc = syscall(SYS_init_module, NULL, 0, "");
    return reached(rc, errno);
}

/* mount(NULL, NULL, NULL, 0, NULL) through the i386 (int 0x80) and x32 syscall tables:
 * a filter that covered only x86_64 would let these past unchecked. Reaching the
 * kernel gives EFAULT (or ENOSYS where the kernel lacks that ABI). */
static int do_mount_i386(void) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(21), "b"(0), "c"(0), "d"(0), "S"(0), "D"(0)
                     : "memory");
    return reached(ret < 0 ? -1 : 0, ret < 0 ? (int)-ret : 0);
}

static int do_mount_x32(void) {
    long rc = syscall(0x40000000 | 165, NULL, NULL, NULL, 0, NULL);
    return reached(rc, errno);
}

static int do_rawsocket(void) {
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    int err = errno;
    if (fd >= 0)
        close(fd);
    return result(fd >= 0 ? 0 : -1, err);
}

static int do_openw(const char *path) {
    int fd = open(path, O_WRONLY);
    int err = errno;
    if (fd >= 0)
        close(fd); /* never written */
    return result(fd >= 0 ? 0 : -1, err);
}

static int do_read(const char *path) {
    char buf[4];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return result(-1, errno);
    ssize_t n = read(fd, buf, sizeof buf);
    int err = errno;
    close(fd);
    if (n > 0)
        return result(0, 0);
    if (n == 0) { /* masked: /dev/null bound over it */
        printf("denied %s: empty\n", action);
        return 1;
    }
    return result(-1, err);
}

static int do_ptrace(const char *arg) {
    pid_t pid = arg ? atoi(arg) : 1;
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    int err = errno;
    if (rc == 0) {
        waitpid(pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        return result(0, 0);
    }
    if (err == ESRCH) { /* not even visible: outside our PID namespace */
        printf("denied %s: ESRCH\n", action);
        return 1;
    }
    return result(-1, err);
}

static int do_userns(void) {
    int rc = unshare(CLONE_NEWUSER);
    return result(rc, errno);
}

static int do_hostname(void) {
    char name[256] = {0};
    gethostname(name, sizeof name - 1);
    int rc = sethostname(name, strlen(name)); /* the same name: changes nothing */
    return result(rc, errno);
}

static int do_sysctl(void) {
    /* A sysctl that lives in no namespace; written back with its own value. */
    const char *path = "/proc/sys/kernel/printk_ratelimit_burst";
    char buf[64] = {0};
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return result(-1, errno);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0) {
        int err = errno;
        close(fd);
        return result(-1, err);
    }
    lseek(fd, 0, SEEK_SET);
    ssize_t w = write(fd, buf, n);
    int err = errno;
    close(fd);
    return result(w == n ? 0 : -1, err);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe ACTION [ARG]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    action = argv[1];
    const char *arg = argc > 2 ? argv[2] : NULL;
    if (!strcmp(action, "mount")) return do_mount();
    if (!strcmp(action, "mount-i386")) return do_mount_i386();
    if (!strcmp(action, "mount-x32")) return do_mount_x32();
    if (!strcmp(action, "reboot")) return do_reboot();
    if (!strcmp(action, "module")) return do_module();
    if (!strcmp(action, "rawsocket")) return do_rawsocket();
    if (!strcmp(action, "sysrq")) return do_openw("/proc/sysrq-trigger");
    if (!strcmp(action, "openw") && arg) return do_openw(arg);
    if (!strcmp(action, "kcore")) return do_read("/proc/kcore");
    if (!strcmp(action, "read") && arg) return do_read(arg);
    if (!strcmp(action, "ptrace")) return do_ptrace(arg);
    if (!strcmp(action, "userns")) return do_userns();
    if (!strcmp(action, "hostname")) return do_hostname();
    if (!strcmp(action, "sysctl")) return do_sysctl();
    fprintf(stderr, "probe: unknown action %s\n", action);
    return 2;
}
