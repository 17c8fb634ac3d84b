# Linux and libc declarations shared by the compiled modules (epoll, timerfd, signalfd,
# eventfd, pidfd, recvmmsg/sendmmsg, process creation). Only what fastka uses.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EINTR
        EAGAIN
        EWOULDBLOCK
        ENOENT
        EEXIST
        EBADF
        EBUSY
        EINVAL
        ENOSYS
        ECHILD
        EPERM
        ENOMEM
        EINPROGRESS
        ETIMEDOUT


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    enum:
        CLOCK_MONOTONIC
        TIMER_ABSTIME
    int clock_gettime(int clk_id, timespec *tp)
    int clock_nanosleep(int clk, int flags, const timespec *req, timespec *rem)


cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)
    enum:
        PR_SET_TIMERSLACK


cdef extern from "<unistd.h>" nogil:
    ctypedef int pid_t
    ctypedef unsigned int uid_t
    ctypedef unsigned int gid_t
    ctypedef long ssize_t
    int close(int fd)
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    pid_t fork()
    pid_t getpid()
    int execve(const char *path, char *const argv[], char *const envp[])
    void _exit(int status)
    int dup2(int oldfd, int newfd)
    int setpgid(pid_t pid, pid_t pgid)
    int setgid(gid_t gid)
    int setuid(uid_t uid)
    int chdir(const char *path)
    int pipe2(int pipefd[2], int flags)
    int close_range(unsigned int first, unsigned int last, int flags)
    char **environ


cdef extern from "<fcntl.h>" nogil:
    enum:
        O_RDWR
        O_CLOEXEC
        O_NONBLOCK
        F_DUPFD_CLOEXEC
    int open(const char *path, int flags, ...)
    int fcntl(int fd, int cmd, ...)


cdef extern from "<grp.h>" nogil:
    int setgroups(size_t size, const gid_t *list)


cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    ctypedef struct siginfo_t:
        int si_signo
        int si_code
        int si_status
        pid_t si_pid
    struct sigaction_t "sigaction":
        void (*sa_handler)(int)
        sigset_t sa_mask
        int sa_flags
    enum:
        SIG_BLOCK
        SIG_UNBLOCK
        SIG_SETMASK
        SIGKILL
        SIGSTOP
        NSIG "_NSIG"
    void (*SIG_DFL)(int)
    int sigemptyset(sigset_t *s)
    int sigfillset(sigset_t *s)
    int sigaddset(sigset_t *s, int signum)
    int sigdelset(sigset_t *s, int signum)
    int sigismember(const sigset_t *s, int signum)
    int pthread_sigmask(int how, const sigset_t *s, sigset_t *old)
    int sigprocmask(int how, const sigset_t *s, sigset_t *old)
    int sigtimedwait(const sigset_t *s, siginfo_t *info, const timespec *timeout)
    int sigaction(int signum, const sigaction_t *act, sigaction_t *old)
    int SIGRTMIN_ "SIGRTMIN"


cdef extern from "<sys/wait.h>" nogil:
    ctypedef enum idtype_t:
        P_PID
        P_PIDFD
    enum:
        WEXITED
        WNOHANG
        WNOWAIT
        CLD_EXITED
        CLD_KILLED
        CLD_DUMPED
    int waitid(idtype_t idtype, int id, siginfo_t *info, int options)
    pid_t waitpid(pid_t pid, int *status, int options)


cdef extern from "<sys/pidfd.h>" nogil:
    int pidfd_open(pid_t pid, unsigned int flags)


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
        EPOLLPRI
        EPOLLET
        EPOLLONESHOT
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)


cdef extern from "<sys/timerfd.h>" nogil:
    struct itimerspec:
        timespec it_interval
        timespec it_value
    enum:
        TFD_NONBLOCK
        TFD_CLOEXEC
        TFD_TIMER_ABSTIME
    int timerfd_create(int clockid, int flags)
    int timerfd_settime(int fd, int flags, const itimerspec *new_value, itimerspec *old_value)


cdef extern from "<sys/signalfd.h>" nogil:
    struct signalfd_siginfo:
        uint32_t ssi_signo
        int32_t ssi_errno
        int32_t ssi_code
        uint32_t ssi_pid
        uint32_t ssi_uid
        int32_t ssi_status
    enum:
        SFD_NONBLOCK
        SFD_CLOEXEC
    int signalfd(int fd, const sigset_t *mask, int flags)


cdef extern from "<sys/eventfd.h>" nogil:
    ctypedef uint64_t eventfd_t
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC
    int eventfd(unsigned int initval, int flags)
    int eventfd_read(int fd, eventfd_t *value)
    int eventfd_write(int fd, eventfd_t value)


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        unsigned short sa_family
    struct sockaddr_storage:
        unsigned short ss_family
    struct iovec:
        void *iov_base
        size_t iov_len
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *m)
    cmsghdr *CMSG_NXTHDR(msghdr *m, cmsghdr *c)
    unsigned char *CMSG_DATA(cmsghdr *c)
    size_t CMSG_SPACE(size_t n)
    size_t CMSG_LEN(size_t n)
    enum:
        MSG_DONTWAIT
        MSG_DONTROUTE
        MSG_TRUNC
        MSG_WAITFORONE
        SOL_SOCKET
        SO_ERROR
        SO_MARK
        AF_INET
        AF_INET6
        SOCK_STREAM
        SOCK_DGRAM
        SOCK_NONBLOCK
        SOCK_CLOEXEC
    int recvmmsg(int fd, mmsghdr *vec, unsigned int vlen, int flags, timespec *timeout)
    int sendmmsg(int fd, mmsghdr *vec, unsigned int vlen, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags, sockaddr *addr, socklen_t *addrlen)
    ssize_t sendto(int fd, const void *buf, size_t n, int flags, const sockaddr *addr, socklen_t addrlen)
    int socket(int domain, int type, int protocol)
    int connect(int fd, const sockaddr *addr, socklen_t addrlen)
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    int bind(int fd, const sockaddr *addr, socklen_t addrlen)


cdef extern from "<netinet/in.h>" nogil:
    ctypedef uint32_t in_addr_t
    ctypedef uint16_t in_port_t
    struct in_addr:
        in_addr_t s_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in:
        unsigned short sin_family
        in_port_t sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        unsigned short sin6_family
        in_port_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    struct in6_pktinfo:
        in6_addr ipi6_addr
        unsigned int ipi6_ifindex
    enum:
        IPPROTO_IPV6
        IPV6_PKTINFO
        IPV6_HOPLIMIT
    uint16_t htons(uint16_t x)


cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
