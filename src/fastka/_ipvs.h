/* fastka IPVS generic-netlink encoder/decoder: declarations shared by _ipvs.c and cffi.
 *
 * The cdef is derived from this file by _ipvs_build.py (comments and preprocessor lines
 * are dropped), so everything below the include guard must stay cffi-parsable: plain
 * typedefs, fixed array sizes written as numbers, no macros in declarations.
 *
 * Records ("packed structs") are the currency between Python and C: fastka.ipvs.msg
 * packs a Service/Dest into one record with struct.pack once; the batch builder turns
 * arrays of records into many netlink messages in one call. All record fields are host
 * byte order except addresses (network order, as in union nf_inet_addr). The layouts
 * have no implicit padding so that Python's "=" struct formats describe them exactly.
 */
#ifndef FASTKA_IPVS_H
#define FASTKA_IPVS_H
#include <stddef.h>
#include <stdint.h>

/* A virtual service (struct ip_vs_service_user, widened to IPv6): 72 bytes. */
typedef struct fk_ipvs_service {
    uint8_t addr[16];      /* network order; IPv4 in the first 4 bytes */
    uint16_t af;           /* AF_INET or AF_INET6 */
    uint16_t protocol;     /* IPPROTO_TCP/UDP/SCTP; ignored for fwmark services */
    uint16_t port;         /* host order; ignored for fwmark services */
    uint16_t reserved;
    uint32_t fwmark;       /* non-zero: a fwmark service (no protocol/addr/port) */
    uint32_t flags;        /* IP_VS_SVC_F_*; sent with mask 0xffffffff */
    uint32_t timeout;      /* persistence timeout, seconds */
    uint32_t netmask;      /* IPv4: the mask as an integer (0xffffff00); IPv6: prefix length */
    char sched_name[16];   /* NUL-terminated, IP_VS_SCHEDNAME_MAXLEN */
    char pe_name[16];      /* empty: no persistence engine attribute */
} fk_ipvs_service;

/* A real server (struct ip_vs_dest_user, widened): 44 bytes. */
typedef struct fk_ipvs_dest {
    uint8_t addr[16];      /* network order */
    uint16_t af;           /* IPVS_DEST_ATTR_ADDR_FAMILY; 0 omits the attribute */
    uint16_t port;         /* host order */
    uint32_t fwd_method;   /* IP_VS_CONN_F_MASQ/LOCALNODE/TUNNEL/DROUTE */
    uint32_t weight;
    uint32_t u_threshold;
    uint32_t l_threshold;
    uint16_t tun_port;     /* host order; sent only for TUNNEL dests */
    uint16_t tun_flags;    /* IP_VS_TUNNEL_ENCAP_FLAG_* */
    uint8_t tun_type;      /* IP_VS_CONN_F_TUNNEL_TYPE_* */
    uint8_t reserved[3];
} fk_ipvs_dest;

/* One operation of a batch: 12 bytes. */
typedef struct fk_ipvs_op {
    uint32_t cmd;          /* IPVS_CMD_NEW/SET/DEL_SERVICE or IPVS_CMD_NEW/SET/DEL_DEST */
    uint32_t svc;          /* index into the service records */
    uint32_t dest;         /* index into the dest records (dest commands only) */
} fk_ipvs_op;

/* The connection sync daemon (IPVS_CMD_ATTR_DAEMON): 48 bytes. */
typedef struct fk_ipvs_daemon {
    uint32_t state;        /* IP_VS_STATE_MASTER or IP_VS_STATE_BACKUP */
    uint32_t syncid;
    char mcast_ifn[16];
    uint16_t sync_maxlen;  /* 0 omits */
    uint16_t mcast_port;   /* host order; 0 omits */
    uint16_t mcast_af;     /* 0 omits the group; AF_INET or AF_INET6 */
    uint8_t mcast_ttl;     /* 0 omits */
    uint8_t reserved;
    uint8_t mcast_group[16];
} fk_ipvs_daemon;

/* Counters of a dump reply (STATS64 preferred, else STATS): 96 bytes. */
typedef struct fk_ipvs_stats {
    uint64_t conns;
    uint64_t inpkts;
    uint64_t outpkts;
    uint64_t inbytes;
    uint64_t outbytes;
    uint64_t cps;
    uint64_t inpps;
    uint64_t outpps;
    uint64_t inbps;
    uint64_t outbps;
    uint32_t active_conns;   /* dests only */
    uint32_t inact_conns;
    uint32_t persist_conns;
    uint32_t reserved;
} fk_ipvs_stats;

/* sizeof of each record, in the order service, dest, op, daemon, stats (for tests). */
void fk_ipvs_sizes(size_t *out);

/* Encode ops[0..nops) into buf; message i gets nlmsg_seq = seq + i. Stops before the
 * first message that might not fit. nlmsg_flags: REQUEST|ACK on every message if
 * ack_all (Keepalived's framing), else REQUEST, and REQUEST|ACK on the last message
 * written (the kernel reports every error anyway; that one ACK ends the batch). Returns
 * the bytes written and stores the number of ops encoded in *done; -1 if an op names a
 * missing record or an unknown command (*done = its index). */
long fk_ipvs_build_batch(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                         uint32_t pid, const fk_ipvs_op *ops, size_t nops,
                         const fk_ipvs_service *svcs, size_t nsvcs,
                         const fk_ipvs_dest *dests, size_t ndests, int ack_all, size_t *done);

/* Record the replies (NLMSG_ERROR: ACK or error) of a received chunk: errors[i] = errno
 * of the request with seq + i (0 = success). Returns the replies matched; *nerr gets how
 * many were errors, *last the highest index answered (-1: none). -1 if truncated. */
long fk_ipvs_parse_acks(const uint8_t *buf, size_t len, uint32_t seq, size_t nops,
                        int32_t *errors, size_t *nerr, long *last);

/* The remaining builders return the message length, or 0 if cap is too small. */
size_t fk_genl_build_getfamily(uint8_t *buf, size_t cap, uint32_t seq, uint32_t pid,
                               const char *name);
/* A command without attributes (FLUSH, GET_INFO, GET_CONFIG, ZERO, dumps of services
 * and daemons) with the given nlmsg_flags. */
size_t fk_ipvs_build_simple(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                            uint32_t pid, uint8_t cmd, uint16_t flags);
/* GET_DEST dump request of one service (its key only, as ipvsadm). */
size_t fk_ipvs_build_get_dests(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                               uint32_t pid, const fk_ipvs_service *svc);
/* SET_CONFIG: the timeouts that are non-zero. */
size_t fk_ipvs_build_set_config(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                                uint32_t pid, uint32_t tcp, uint32_t tcp_fin, uint32_t udp);
/* NEW_DAEMON (every set field) or DEL_DAEMON (the state only). */
size_t fk_ipvs_build_daemon(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                            uint32_t pid, uint8_t cmd, const fk_ipvs_daemon *d);

/* Parsers of one reply message (starting at its nlmsghdr). They return 0, or -1 if the
 * message is malformed or lacks the nest. */
int fk_genl_parse_family(const uint8_t *msg, size_t len, uint16_t *family);
int fk_ipvs_parse_service(const uint8_t *msg, size_t len, fk_ipvs_service *svc,
                          fk_ipvs_stats *stats);
int fk_ipvs_parse_dest(const uint8_t *msg, size_t len, fk_ipvs_dest *dest,
                       fk_ipvs_stats *stats);
int fk_ipvs_parse_daemon(const uint8_t *msg, size_t len, fk_ipvs_daemon *d);
/* GET_CONFIG reply: out = {tcp, tcp_fin, udp}; GET_INFO reply: out = {version, size}. */
int fk_ipvs_parse_config(const uint8_t *msg, size_t len, uint32_t *out);
int fk_ipvs_parse_info(const uint8_t *msg, size_t len, uint32_t *out);

#endif
