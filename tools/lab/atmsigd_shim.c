/* atmshim: an LD_PRELOAD shim that lets linux-atm's atmsigd run on a kernel without ATM.
 *
 * What it emulates, and why
 * -------------------------
 * atmsigd talks to two things: its user (the "kernel", over the UNIX datagram control
 * socket given on its command line -- nothing to emulate there) and the ATM adapter,
 * through PVC sockets.  This kernel has no PF_ATMPVC, so every PVC-socket call atmsigd
 * makes is answered here, and the VC itself becomes a UNIX datagram socket whose far
 * end is the test harness (tools/lab/atmsigd.py), which carries each datagram as
 * one AAL5 SDU over an emulated tunstack ATM adapter:
 *
 *   socket(PF_ATMPVC, SOCK_DGRAM, 0)  -> a real socket(AF_UNIX, SOCK_DGRAM); the fd is
 *                                        remembered as an "ATM fd".  One datagram is one
 *                                        AAL5 SDU, so one SSCOP PDU on the signalling VC.
 *   setsockopt(SOL_ATM, SO_ATMQOS | SO_ATMSAP | SO_SETCLP)  -> checked and stored.
 *   bind()/connect() with a sockaddr_atmpvc (itf.vpi.vci) -> the UNIX socket binds
 *                                        $TUNSTACK_ATMSHIM_DIR/atm-<pid>-<vpi>.<vci> and
 *                                        connects to $TUNSTACK_ATMSHIM_DIR/vc-<vpi>.<vci>,
 *                                        the harness's end of that VC.  When nobody is
 *                                        there (yet), the connect is retried on every
 *                                        write, and a write with no far end is dropped
 *                                        and reported as sent -- a cell stream into an
 *                                        unterminated VC, as on a real line.
 *                                        ATM_VCI_ANY (-1) allocates the lowest free VCI
 *                                        from 32 (ATM_NOT_RSV_VCI) upward -- free: no ATM
 *                                        fd of ours has it and $DIR/vc-<vpi>.<vci> does
 *                                        not exist (the harness marks the data VCs of its
 *                                        calls so, as the kernel's SVC sockets would hold
 *                                        them); ATM_VPI_ANY gives VPI 0, ATM_ITF_ANY the
 *                                        emulated interface.
 *   getsockname()                     -> the sockaddr_atmpvc the fd is bound to (atmsigd
 *                                        reads back an allocated VCI this way: network
 *                                        mode puts it into the connection identifier).
 *   ioctl(ATM_GETLINKRATE)            -> $TUNSTACK_ATMSHIM_LINKRATE cells/s (default
 *                                        353207, OC-3c), length = sizeof(int).
 *   ioctl(ATM_GETADDR)                -> the local AESAs from $TUNSTACK_ATMSHIM_AESA
 *                                        (40 hex digits each, separated by ',' or ' '),
 *                                        as sockaddr_atmsvc entries; length = bytes
 *                                        written, E2BIG when the buffer is too small.
 *                                        atmsigd treats a failure of either as fatal, and
 *                                        GETADDR is its only source of local addresses.
 *   close()                           -> unlinks the bound path.
 *
 * read/write/select on an ATM fd need nothing: it is a real socket.  `write`/`send` are
 * wrapped only for the lazy connect and the drop described above.  Every other call,
 * and every call on a non-ATM fd, goes to libc unchanged (dlsym(RTLD_NEXT)); the ATM
 * ioctls are answered on any fd (their request numbers belong to ATM alone).  Set
 * TUNSTACK_ATMSHIM_LOG=1 to log each emulated call to stderr.
 *
 * Environment: TUNSTACK_ATMSHIM_DIR (required for bind), TUNSTACK_ATMSHIM_AESA,
 * TUNSTACK_ATMSHIM_LINKRATE, TUNSTACK_ATMSHIM_ITF (interface number, default 0),
 * TUNSTACK_ATMSHIM_LOG.
 *
 * Layouts come from the Linux UAPI headers (<linux/atm.h>, <linux/atmdev.h>); this file
 * is our own code, written from those headers and from observing atmsigd's calls.
 *
 * Build: gcc -shared -fPIC -O2 -o shim.so shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/atm.h>
#include <linux/atmdev.h>

#ifndef AF_ATMPVC
#define AF_ATMPVC 8
#endif
#ifndef AF_ATMSVC
#define AF_ATMSVC 20
#endif
#ifndef SOL_ATM
#define SOL_ATM 264
#endif

#define MAX_FDS 1024            /* atmsigd select()s: its fds stay below FD_SETSIZE */

struct atm_fd {
    int used;
    int bound;
    int connected;              /* the UNIX socket is connected to the harness's vc-* path */
    pid_t owner;                /* the process that bound (a forked child must not unlink) */
    struct sockaddr_atmpvc pvc;
    struct atm_qos qos;
    int has_qos;
    struct atm_sap sap;
    struct sockaddr_un self, peer;
};

static struct atm_fd fds[MAX_FDS];

static int (*real_socket)(int, int, int);
static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static int (*real_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_send)(int, const void *, size_t, int);

static void resolve(void)
{
    if (real_socket)
        return;
    real_bind = dlsym(RTLD_NEXT, "bind");
    real_connect = dlsym(RTLD_NEXT, "connect");
    real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
    real_getsockname = dlsym(RTLD_NEXT, "getsockname");
    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
    real_send = dlsym(RTLD_NEXT, "send");
    real_socket = dlsym(RTLD_NEXT, "socket");
}

static void logf_(const char *fmt, ...)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("TUNSTACK_ATMSHIM_LOG");
        on = v && *v && strcmp(v, "0") != 0;
    }
    if (!on)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    /* straight to fd 2: no stdio state shared with atmsigd's own logging */
    ssize_t r = real_write(2, "atmshim: ", 9);
    r = real_write(2, buf, n);
    (void)r;
}

static struct atm_fd *atm(int fd)
{
    return fd >= 0 && fd < MAX_FDS && fds[fd].used ? &fds[fd] : NULL;
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

/* --- socket ------------------------------------------------------------------------ */
int socket(int domain, int type, int protocol)
{
    resolve();
    if (domain != AF_ATMPVC)
        return real_socket(domain, type, protocol);
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (base != SOCK_DGRAM) {
        logf_("socket(PF_ATMPVC, type %d): only SOCK_DGRAM (AAL5) is emulated", type);
        return fail(EPROTOTYPE);
    }
    int fd = real_socket(AF_UNIX, type, 0);
    if (fd < 0)
        return fd;
    if (fd >= MAX_FDS) {
        real_close(fd);
        return fail(EMFILE);
    }
    memset(&fds[fd], 0, sizeof fds[fd]);
    fds[fd].used = 1;
    logf_("socket(PF_ATMPVC, SOCK_DGRAM, %d) = %d", protocol, fd);
    return fd;
}

/* --- setsockopt -------------------------------------------------------------------- */
int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (!a || level != SOL_ATM)
        return real_setsockopt(fd, level, name, val, len);
    if (name == SO_ATMQOS) {
        if (len != sizeof(struct atm_qos) || !val)
            return fail(EINVAL);
        memcpy(&a->qos, val, sizeof a->qos);
        a->has_qos = 1;
        logf_("setsockopt(%d, SO_ATMQOS): aal %d, tx class %d pcr %d max_sdu %d, rx class %d max_sdu %d",
              fd, a->qos.aal, a->qos.txtp.traffic_class, a->qos.txtp.pcr, a->qos.txtp.max_sdu,
              a->qos.rxtp.traffic_class, a->qos.rxtp.max_sdu);
        return 0;
    }
    if (name == SO_ATMSAP) {
        if (len != sizeof(struct atm_sap) || !val)
            return fail(EINVAL);
        memcpy(&a->sap, val, sizeof a->sap);
        logf_("setsockopt(%d, SO_ATMSAP)", fd);
        return 0;
    }
    if (name == SO_SETCLP) {
        logf_("setsockopt(%d, SO_SETCLP)", fd);
        return 0;
    }
    logf_("setsockopt(%d, SOL_ATM, %#x): not emulated", fd, (unsigned)name);
    return fail(ENOPROTOOPT);
}

/* --- bind / connect: open a VC ------------------------------------------------------ */
static int vci_in_use(int vpi, int vci)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (fds[i].used && fds[i].bound && fds[i].pvc.sap_addr.vpi == vpi && fds[i].pvc.sap_addr.vci == vci)
            return 1;
    return 0;
}

/* The harness has vpi.vci open when $DIR/vc-<vpi>.<vci> exists: the socket of a bridged VC,
 * or a marker file for the data VC of a call (which stands in for the kernel's SVC socket). */
static int harness_has(const char *dir, int vpi, int vci)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(path, sizeof path, "%s/vc-%d.%d", dir, vpi, vci);
    return n > 0 && n < (int)sizeof path && access(path, F_OK) == 0;
}

static int try_connect(int fd, struct atm_fd *a)
{
    if (real_connect(fd, (struct sockaddr *)&a->peer, sizeof a->peer) == 0) {
        a->connected = 1;
        logf_("fd %d: connected to %s", fd, a->peer.sun_path);
        return 0;
    }
    return -1;
}

static int open_vc(int fd, struct atm_fd *a, const struct sockaddr *addr, socklen_t len, const char *how)
{
    if (a->bound)
        return fail(EISCONN);
    if (!addr || len < (socklen_t)sizeof(struct sockaddr_atmpvc))
        return fail(EINVAL);
    struct sockaddr_atmpvc pvc;
    memcpy(&pvc, addr, sizeof pvc);
    if (pvc.sap_family != AF_ATMPVC)
        return fail(EAFNOSUPPORT);
    int itf = env_int("TUNSTACK_ATMSHIM_ITF", 0);
    int vpi = pvc.sap_addr.vpi, vci = pvc.sap_addr.vci;
    if (pvc.sap_addr.itf != ATM_ITF_ANY && pvc.sap_addr.itf != itf)
        return fail(ENODEV);
    const char *dir = getenv("TUNSTACK_ATMSHIM_DIR");
    if (!dir || !*dir) {
        logf_("%s(%d): TUNSTACK_ATMSHIM_DIR is not set", how, fd);
        return fail(ENETDOWN);
    }
    if (vpi == ATM_VPI_ANY)
        vpi = 0;
    if (vci == ATM_VCI_ANY) {
        /* free = neither one of our own fds nor a VC the harness has open */
        for (vci = ATM_NOT_RSV_VCI; vci <= ATM_MAX_VCI; vci++)
            if (!vci_in_use(vpi, vci) && !harness_has(dir, vpi, vci))
                break;
        if (vci > ATM_MAX_VCI)
            return fail(EADDRINUSE);
    }
    if (vpi < 0 || vpi > ATM_MAX_VPI || vci < 0 || vci > ATM_MAX_VCI)
        return fail(EINVAL);
    if (vci_in_use(vpi, vci))
        return fail(EADDRINUSE);
    struct sockaddr_un self = {.sun_family = AF_UNIX}, peer = {.sun_family = AF_UNIX};
    int n1 = snprintf(self.sun_path, sizeof self.sun_path, "%s/atm-%d-%d.%d", dir, (int)getpid(), vpi, vci);
    int n2 = snprintf(peer.sun_path, sizeof peer.sun_path, "%s/vc-%d.%d", dir, vpi, vci);
    if (n1 < 0 || n2 < 0 || n1 >= (int)sizeof self.sun_path || n2 >= (int)sizeof peer.sun_path)
        return fail(ENAMETOOLONG);
    unlink(self.sun_path);
    if (real_bind(fd, (struct sockaddr *)&self, sizeof self) < 0)
        return -1;
    a->bound = 1;
    a->owner = getpid();
    a->self = self;
    a->peer = peer;
    a->pvc.sap_family = AF_ATMPVC;
    a->pvc.sap_addr.itf = itf;
    a->pvc.sap_addr.vpi = vpi;
    a->pvc.sap_addr.vci = vci;
    logf_("%s(%d, %d.%d.%d) -> VC %d.%d.%d", how, fd, pvc.sap_addr.itf, pvc.sap_addr.vpi, pvc.sap_addr.vci,
          itf, vpi, vci);
    try_connect(fd, a);         /* no far end yet: retried on the first write */
    return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (!a)
        return real_bind(fd, addr, len);
    return open_vc(fd, a, addr, len, "bind");
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (!a)
        return real_connect(fd, addr, len);
    return open_vc(fd, a, addr, len, "connect");
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (!a)
        return real_getsockname(fd, addr, len);
    if (!addr || !len)
        return fail(EFAULT);
    struct sockaddr_atmpvc pvc;
    memset(&pvc, 0, sizeof pvc);
    pvc.sap_family = AF_ATMPVC;
    if (a->bound)
        pvc = a->pvc;
    socklen_t n = *len < sizeof pvc ? *len : sizeof pvc;
    memcpy(addr, &pvc, n);
    *len = sizeof pvc;
    logf_("getsockname(%d) = %d.%d.%d", fd, pvc.sap_addr.itf, pvc.sap_addr.vpi, pvc.sap_addr.vci);
    return 0;
}

/* --- the data path: a lazy connect, and no far end = cells into the void ------------- */
static ssize_t vc_send(int fd, struct atm_fd *a, const void *buf, size_t n, int flags, int use_send)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!a->connected && (!a->bound || try_connect(fd, a) < 0)) {
            logf_("fd %d: no far end on VC %d.%d, %zu octets dropped", fd, a->pvc.sap_addr.vpi,
                  a->pvc.sap_addr.vci, n);
            return (ssize_t)n;
        }
        ssize_t r = use_send ? real_send(fd, buf, n, flags) : real_write(fd, buf, n);
        if (r >= 0 || (errno != ECONNREFUSED && errno != ENOTCONN && errno != EDESTADDRREQ))
            return r;
        a->connected = 0;       /* the harness's end went away (or was bound anew) */
    }
    return (ssize_t)n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (!a)
        return real_write(fd, buf, n);
    return vc_send(fd, a, buf, n, 0, 0);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (!a)
        return real_send(fd, buf, n, flags);
    return vc_send(fd, a, buf, n, flags, 1);
}

int close(int fd)
{
    resolve();
    struct atm_fd *a = atm(fd);
    if (a) {
        if (a->bound && a->owner == getpid())
            unlink(a->self.sun_path);
        logf_("close(%d) (VC %d.%d)", fd, a->pvc.sap_addr.vpi, a->pvc.sap_addr.vci);
        memset(a, 0, sizeof *a);
    }
    return real_close(fd);
}

/* --- interface ioctls --------------------------------------------------------------- */
static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parse $TUNSTACK_ATMSHIM_AESA into up to `max` sockaddr_atmsvc; returns the count or -1. */
static int local_aesas(struct sockaddr_atmsvc *out, int max)
{
    const char *s = getenv("TUNSTACK_ATMSHIM_AESA");
    int count = 0;
    if (!s)
        return 0;
    while (*s) {
        while (*s == ',' || *s == ' ')
            s++;
        if (!*s)
            break;
        unsigned char prv[ATM_ESA_LEN];
        int i;
        for (i = 0; i < ATM_ESA_LEN; i++) {
            int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
            if (hi < 0 || lo < 0)
                return -1;
            prv[i] = (unsigned char)(hi << 4 | lo);
            s += 2;
        }
        if (*s && *s != ',' && *s != ' ')
            return -1;
        if (count < max) {
            memset(&out[count], 0, sizeof out[count]);
            out[count].sas_family = AF_ATMSVC;
            memcpy(out[count].sas_addr.prv, prv, ATM_ESA_LEN);
        }
        count++;
    }
    return count;
}

int ioctl(int fd, unsigned long req, ...)
{
    resolve();
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (req != ATM_GETLINKRATE && req != ATM_GETADDR)
        return real_ioctl(fd, req, arg);
    struct atmif_sioc *sioc = arg;
    if (!sioc)
        return fail(EFAULT);
    if (sioc->number != env_int("TUNSTACK_ATMSHIM_ITF", 0)) {
        logf_("ioctl(%d, %s, itf %d): no such interface", fd,
              req == ATM_GETADDR ? "ATM_GETADDR" : "ATM_GETLINKRATE", sioc->number);
        return fail(ENODEV);
    }
    if (req == ATM_GETLINKRATE) {
        int rate = env_int("TUNSTACK_ATMSHIM_LINKRATE", 353207);
        if (sioc->length < (int)sizeof rate || !sioc->arg)
            return fail(EINVAL);
        memcpy(sioc->arg, &rate, sizeof rate);
        sioc->length = sizeof rate;
        logf_("ioctl(%d, ATM_GETLINKRATE, itf %d) = %d cells/s", fd, sioc->number, rate);
        return 0;
    }
    struct sockaddr_atmsvc addrs[16];
    int n = local_aesas(addrs, 16);
    if (n < 0 || n > 16) {
        logf_("ioctl(%d, ATM_GETADDR): TUNSTACK_ATMSHIM_AESA is not a list of 40-hex-digit AESAs", fd);
        return fail(EINVAL);
    }
    int bytes = n * (int)sizeof(struct sockaddr_atmsvc);
    if (sioc->length < bytes || (bytes && !sioc->arg))
        return fail(E2BIG);
    if (bytes)
        memcpy(sioc->arg, addrs, bytes);
    sioc->length = bytes;
    logf_("ioctl(%d, ATM_GETADDR, itf %d) = %d address(es)", fd, sioc->number, n);
    return 0;
}
