/* fastka IPVS generic-netlink encoder/decoder (see _ipvs.h for the API).
 *
 * Messages are laid out as Keepalived 2.2.7 sends them (golden vectors in
 * ../shared/ipvs-golden): nlmsg_flags REQUEST|ACK, nests flagged NLA_F_NESTED, the
 * complete service nest in every service and dest command, ADDR always 16 bytes,
 * FLAGS with mask 0xffffffff, and the dest ADDR_FAMILY attribute first.
 *
 * Everything is written with memcpy into an unaligned byte buffer, so the code is
 * independent of the caller's buffer alignment; header fields are host order (as
 * netlink is), ports and IPv4 netmasks network order (the kernel reads be16/be32).
 */
#include "_ipvs.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* Netlink / generic netlink / IPVS constants (linux/netlink.h, genetlink.h, ip_vs.h). */
enum {
    NLMSG_ERROR_ = 2,
    NLM_F_REQUEST_ = 0x1,
    NLM_F_ACK_ = 0x4,
    NLA_F_NESTED_ = 0x8000,
    NLA_TYPE_MASK_ = 0x3fff,
    GENL_ID_CTRL_ = 0x10,
    CTRL_CMD_GETFAMILY_ = 3,
    CTRL_ATTR_FAMILY_ID_ = 1,
    CTRL_ATTR_FAMILY_NAME_ = 2,
    IPVS_GENL_VERSION_ = 1,

    CMD_NEW_SERVICE = 1,
    CMD_SET_SERVICE = 2,
    CMD_DEL_SERVICE = 3,
    CMD_NEW_DEST = 5,
    CMD_SET_DEST = 6,
    CMD_DEL_DEST = 7,
    CMD_DEL_DAEMON = 10,

    CMD_ATTR_SERVICE = 1,
    CMD_ATTR_DEST = 2,
    CMD_ATTR_DAEMON = 3,
    CMD_ATTR_TIMEOUT_TCP = 4,
    CMD_ATTR_TIMEOUT_TCP_FIN = 5,
    CMD_ATTR_TIMEOUT_UDP = 6,

    SVC_AF = 1,
    SVC_PROTOCOL = 2,
    SVC_ADDR = 3,
    SVC_PORT = 4,
    SVC_FWMARK = 5,
    SVC_SCHED_NAME = 6,
    SVC_FLAGS = 7,
    SVC_TIMEOUT = 8,
    SVC_NETMASK = 9,
    SVC_STATS = 10,
    SVC_PE_NAME = 11,
    SVC_STATS64 = 12,

    DEST_ADDR = 1,
    DEST_PORT = 2,
    DEST_FWD_METHOD = 3,
    DEST_WEIGHT = 4,
    DEST_U_THRESH = 5,
    DEST_L_THRESH = 6,
    DEST_ACTIVE_CONNS = 7,
    DEST_INACT_CONNS = 8,
    DEST_PERSIST_CONNS = 9,
    DEST_STATS = 10,
    DEST_ADDR_FAMILY = 11,
    DEST_STATS64 = 12,
    DEST_TUN_TYPE = 13,
    DEST_TUN_PORT = 14,
    DEST_TUN_FLAGS = 15,

    DAEMON_STATE = 1,
    DAEMON_MCAST_IFN = 2,
    DAEMON_SYNC_ID = 3,
    DAEMON_SYNC_MAXLEN = 4,
    DAEMON_MCAST_GROUP = 5,
    DAEMON_MCAST_GROUP6 = 6,
    DAEMON_MCAST_PORT = 7,
    DAEMON_MCAST_TTL = 8,

    STATS_OUTBPS = 10,
    INFO_VERSION = 1,
    INFO_CONN_TAB_SIZE = 2,

    CONN_F_FWD_MASK = 0x7,
    CONN_F_TUNNEL = 2,
    TUN_TYPE_IPIP = 0,
    TUN_TYPE_GUE = 1,
};

/* Upper bound of one service or dest command: 16 + 4 + service nest (116) + dest nest
 * (104). The batch stops when less than this is left, which keeps the loop free of
 * per-attribute bounds checks. */
#define MSG_MAX 256

void fk_ipvs_sizes(size_t *out)
{
    out[0] = sizeof(fk_ipvs_service);
    out[1] = sizeof(fk_ipvs_dest);
    out[2] = sizeof(fk_ipvs_op);
    out[3] = sizeof(fk_ipvs_daemon);
    out[4] = sizeof(fk_ipvs_stats);
}

/* ---- writing ---------------------------------------------------------------------- */

static inline void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static inline uint8_t *nla_hdr(uint8_t *p, uint16_t len, uint16_t type)
{
    wr16(p, len);
    wr16(p + 2, type);
    return p + 4;
}

static inline uint8_t *put_u8(uint8_t *p, uint16_t type, uint8_t v)
{
    nla_hdr(p, 5, type);
    p[4] = v;
    p[5] = p[6] = p[7] = 0;
    return p + 8;
}

static inline uint8_t *put_u16(uint8_t *p, uint16_t type, uint16_t v)
{
    nla_hdr(p, 6, type);
    wr16(p + 4, v);
    wr16(p + 6, 0);
    return p + 8;
}

static inline uint8_t *put_u32(uint8_t *p, uint16_t type, uint32_t v)
{
    nla_hdr(p, 8, type);
    wr32(p + 4, v);
    return p + 8;
}

static inline uint8_t *put_bin(uint8_t *p, uint16_t type, const void *v, size_t n)
{
    size_t padded = (n + 3) & ~(size_t)3;
    nla_hdr(p, (uint16_t)(4 + n), type);
    memcpy(p + 4, v, n);
    memset(p + 4 + n, 0, padded - n);
    return p + 4 + padded;
}

/* A NUL-terminated string of at most maxlen - 1 characters (the kernel's limit). */
static inline uint8_t *put_str(uint8_t *p, uint16_t type, const char *s, size_t maxlen)
{
    size_t n = strnlen(s, maxlen - 1);
    size_t padded = (n + 1 + 3) & ~(size_t)3;
    nla_hdr(p, (uint16_t)(4 + n + 1), type);
    memcpy(p + 4, s, n);
    memset(p + 4 + n, 0, padded - n);
    return p + 4 + padded;
}

static inline uint8_t *nest_end(uint8_t *start, uint8_t *end, uint16_t type)
{
    nla_hdr(start, (uint16_t)(end - start), type | NLA_F_NESTED_);
    return end;
}

/* nlmsghdr + genlmsghdr; the length is patched by msg_end(). */
static inline uint8_t *msg_begin(uint8_t *p, uint16_t type, uint16_t flags, uint32_t seq,
                                 uint32_t pid, uint8_t cmd, uint8_t version)
{
    wr32(p, 0);
    wr16(p + 4, type);
    wr16(p + 6, flags);
    wr32(p + 8, seq);
    wr32(p + 12, pid);
    p[16] = cmd;
    p[17] = version;
    p[18] = p[19] = 0;
    return p + 20;
}

static inline size_t msg_end(uint8_t *start, uint8_t *end)
{
    wr32(start, (uint32_t)(end - start));
    return (size_t)(end - start);
}

static inline uint8_t *svc_key(uint8_t *p, const fk_ipvs_service *s)
{
    p = put_u16(p, SVC_AF, s->af);
    if (s->fwmark)
        return put_u32(p, SVC_FWMARK, s->fwmark);
    p = put_u16(p, SVC_PROTOCOL, s->protocol);
    p = put_bin(p, SVC_ADDR, s->addr, 16);
    return put_u16(p, SVC_PORT, htons(s->port));
}

static inline uint8_t *svc_nest(uint8_t *p, const fk_ipvs_service *s)
{
    uint8_t *nest = p;
    p = svc_key(p + 4, s);
    p = put_str(p, SVC_SCHED_NAME, s->sched_name, sizeof s->sched_name);
    if (s->pe_name[0])
        p = put_str(p, SVC_PE_NAME, s->pe_name, sizeof s->pe_name);
    nla_hdr(p, 12, SVC_FLAGS);
    wr32(p + 4, s->flags);
    wr32(p + 8, 0xffffffffu);
    p += 12;
    p = put_u32(p, SVC_TIMEOUT, s->timeout);
    /* IPv4: a be32 mask; IPv6: the prefix length as the kernel stores it (raw u32). */
    p = put_u32(p, SVC_NETMASK, s->af == AF_INET6 ? s->netmask : htonl(s->netmask));
    return nest_end(nest, p, CMD_ATTR_SERVICE);
}

static inline uint8_t *dest_nest(uint8_t *p, const fk_ipvs_dest *d)
{
    uint8_t *nest = p;
    p += 4;
    if (d->af)
        p = put_u16(p, DEST_ADDR_FAMILY, d->af);
    p = put_bin(p, DEST_ADDR, d->addr, 16);
    p = put_u16(p, DEST_PORT, htons(d->port));
    p = put_u32(p, DEST_FWD_METHOD, d->fwd_method);
    p = put_u32(p, DEST_WEIGHT, d->weight);
    /* As Keepalived: the type for every tunnel, the port for GUE only, the checksum
     * flags for GUE and GRE (IPIP has none). */
    if ((d->fwd_method & CONN_F_FWD_MASK) == CONN_F_TUNNEL) {
        p = put_u8(p, DEST_TUN_TYPE, d->tun_type);
        if (d->tun_type == TUN_TYPE_GUE)
            p = put_u16(p, DEST_TUN_PORT, htons(d->tun_port));
        if (d->tun_type != TUN_TYPE_IPIP)
            p = put_u16(p, DEST_TUN_FLAGS, d->tun_flags);
    }
    p = put_u32(p, DEST_U_THRESH, d->u_threshold);
    p = put_u32(p, DEST_L_THRESH, d->l_threshold);
    return nest_end(nest, p, CMD_ATTR_DEST);
}

long fk_ipvs_build_batch(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                         uint32_t pid, const fk_ipvs_op *ops, size_t nops,
                         const fk_ipvs_service *svcs, size_t nsvcs,
                         const fk_ipvs_dest *dests, size_t ndests, int ack_all, size_t *done)
{
    uint8_t *p = buf;
    uint8_t *last_msg = NULL;
    const uint16_t flags = ack_all ? NLM_F_REQUEST_ | NLM_F_ACK_ : NLM_F_REQUEST_;
    /* The service nest last written: consecutive ops on one service (its dests) copy
     * it instead of encoding it again. */
    const uint8_t *last_nest = NULL;
    size_t last_len = 0;
    uint32_t last_svc = 0;
    size_t i;
    for (i = 0; i < nops; i++) {
        const fk_ipvs_op *op = &ops[i];
        uint8_t *m;
        int with_dest;
        if ((size_t)(buf + cap - p) < MSG_MAX)
            break;
        if (op->svc >= nsvcs)
            goto bad;
        switch (op->cmd) {
        case CMD_NEW_SERVICE:
        case CMD_SET_SERVICE:
        case CMD_DEL_SERVICE:
            with_dest = 0;
            break;
        case CMD_NEW_DEST:
        case CMD_SET_DEST:
        case CMD_DEL_DEST:
            if (op->dest >= ndests)
                goto bad;
            with_dest = 1;
            break;
        default:
            goto bad;
        }
        m = msg_begin(p, family, flags, seq + (uint32_t)i, pid, (uint8_t)op->cmd,
                      IPVS_GENL_VERSION_);
        if (last_nest && last_svc == op->svc) {
            memcpy(m, last_nest, last_len);
            last_nest = m;
            m += last_len;
        } else {
            uint8_t *nest = m;
            m = svc_nest(m, &svcs[op->svc]);
            last_nest = nest;
            last_len = (size_t)(m - nest);
            last_svc = op->svc;
        }
        if (with_dest)
            m = dest_nest(m, &dests[op->dest]);
        last_msg = p;
        p += msg_end(p, m);
    }
    /* The kernel always reports errors; the one ACK on the last message tells that all
     * before it were processed (in order), so success costs no reply per message. */
    if (last_msg)
        wr16(last_msg + 6, NLM_F_REQUEST_ | NLM_F_ACK_);
    *done = i;
    return (long)(p - buf);
bad:
    *done = i;
    return -1;
}

/* ---- reading ---------------------------------------------------------------------- */

static inline uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

long fk_ipvs_parse_acks(const uint8_t *buf, size_t len, uint32_t seq, size_t nops,
                        int32_t *errors, size_t *nerr, long *last)
{
    size_t off = 0;
    long acks = 0;
    *nerr = 0;
    *last = -1;
    while (off + 16 <= len) {
        uint32_t mlen = rd32(buf + off);
        if (mlen < 16 || mlen > len - off)
            return -1;
        if (rd16(buf + off + 4) == NLMSG_ERROR_ && mlen >= 20) {
            uint32_t idx = rd32(buf + off + 8) - seq;  /* wraps like the sequence */
            if (idx < nops) {
                int32_t err = (int32_t)rd32(buf + off + 16);
                errors[idx] = -err;
                acks++;
                if ((long)idx > *last)
                    *last = (long)idx;
                if (err)
                    (*nerr)++;
            }
        }
        off += (mlen + 3) & ~(uint32_t)3;
    }
    return acks;
}

/* Iterate the attributes in [p, end): yields type (flags stripped), payload and its
 * length. Malformed lengths end the walk. */
#define FOR_EACH_ATTR(p, end, type, val, vlen)                                           \
    for (const uint8_t *a_ = (p); a_ + 4 <= (end) && rd16(a_) >= 4 &&                  \
                                  a_ + rd16(a_) <= (end) &&                              \
                                  ((type) = rd16(a_ + 2) & NLA_TYPE_MASK_, (val) = a_ + 4, \
                                   (vlen) = (size_t)rd16(a_) - 4, 1);                    \
         a_ += (rd16(a_) + 3u) & ~3u)

/* The top-level attribute of a generic netlink message; NULL if absent. */
static const uint8_t *find_top(const uint8_t *msg, size_t len, uint16_t want, size_t *vlen)
{
    uint16_t type;
    const uint8_t *val;
    size_t n;
    uint32_t mlen;
    if (len < 20)
        return NULL;
    mlen = rd32(msg);
    if (mlen < 20 || mlen > len)
        return NULL;
    FOR_EACH_ATTR(msg + 20, msg + mlen, type, val, n) {
        if (type == want) {
            *vlen = n;
            return val;
        }
    }
    return NULL;
}

static void copy_str(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    size_t k = strnlen((const char *)v, n < cap - 1 ? n : cap - 1);
    memset(dst, 0, cap);
    memcpy(dst, v, k);
}

static void copy_addr(uint8_t *dst, const uint8_t *v, size_t n)
{
    memset(dst, 0, 16);
    memcpy(dst, v, n < 16 ? n : 16);
}

/* STATS carries u32 and u64 counters, STATS64 only u64: the length tells them apart. */
static void parse_stats(const uint8_t *p, size_t len, fk_ipvs_stats *st)
{
    uint16_t type;
    const uint8_t *val;
    size_t n;
    uint64_t f[STATS_OUTBPS] = {0};  /* conns .. outbps, in attribute order */
    FOR_EACH_ATTR(p, p + len, type, val, n) {
        if (type < 1 || type > STATS_OUTBPS)
            continue;  /* PAD (11) and anything newer */
        if (n >= 8)
            f[type - 1] = rd64(val);
        else if (n >= 4)
            f[type - 1] = rd32(val);
    }
    st->conns = f[0];
    st->inpkts = f[1];
    st->outpkts = f[2];
    st->inbytes = f[3];
    st->outbytes = f[4];
    st->cps = f[5];
    st->inpps = f[6];
    st->outpps = f[7];
    st->inbps = f[8];
    st->outbps = f[9];
}

int fk_ipvs_parse_service(const uint8_t *msg, size_t len, fk_ipvs_service *svc,
                          fk_ipvs_stats *stats)
{
    size_t nlen, n;
    uint16_t type;
    const uint8_t *val;
    const uint8_t *nest = find_top(msg, len, CMD_ATTR_SERVICE, &nlen);
    const uint8_t *st32 = NULL, *st64 = NULL;
    size_t st32len = 0, st64len = 0;
    uint32_t raw_mask = 0;
    if (!nest)
        return -1;
    memset(svc, 0, sizeof *svc);
    memset(stats, 0, sizeof *stats);
    FOR_EACH_ATTR(nest, nest + nlen, type, val, n) {
        switch (type) {
        case SVC_AF: if (n >= 2) svc->af = rd16(val); break;
        case SVC_PROTOCOL: if (n >= 2) svc->protocol = rd16(val); break;
        case SVC_ADDR: copy_addr(svc->addr, val, n); break;
        case SVC_PORT: if (n >= 2) svc->port = ntohs(rd16(val)); break;
        case SVC_FWMARK: if (n >= 4) svc->fwmark = rd32(val); break;
        case SVC_SCHED_NAME: copy_str(svc->sched_name, sizeof svc->sched_name, val, n); break;
        case SVC_PE_NAME: copy_str(svc->pe_name, sizeof svc->pe_name, val, n); break;
        case SVC_FLAGS: if (n >= 4) svc->flags = rd32(val); break;
        case SVC_TIMEOUT: if (n >= 4) svc->timeout = rd32(val); break;
        case SVC_NETMASK: if (n >= 4) raw_mask = rd32(val); break;
        case SVC_STATS: st32 = val; st32len = n; break;
        case SVC_STATS64: st64 = val; st64len = n; break;
        default: break;
        }
    }
    svc->netmask = svc->af == AF_INET6 ? raw_mask : ntohl(raw_mask);
    if (st64)
        parse_stats(st64, st64len, stats);
    else if (st32)
        parse_stats(st32, st32len, stats);
    return 0;
}

int fk_ipvs_parse_dest(const uint8_t *msg, size_t len, fk_ipvs_dest *dest,
                       fk_ipvs_stats *stats)
{
    size_t nlen, n;
    uint16_t type;
    const uint8_t *val;
    const uint8_t *nest = find_top(msg, len, CMD_ATTR_DEST, &nlen);
    const uint8_t *st32 = NULL, *st64 = NULL;
    size_t st32len = 0, st64len = 0;
    if (!nest)
        return -1;
    memset(dest, 0, sizeof *dest);
    memset(stats, 0, sizeof *stats);
    FOR_EACH_ATTR(nest, nest + nlen, type, val, n) {
        switch (type) {
        case DEST_ADDR: copy_addr(dest->addr, val, n); break;
        case DEST_PORT: if (n >= 2) dest->port = ntohs(rd16(val)); break;
        case DEST_FWD_METHOD: if (n >= 4) dest->fwd_method = rd32(val); break;
        case DEST_WEIGHT: if (n >= 4) dest->weight = rd32(val); break;
        case DEST_U_THRESH: if (n >= 4) dest->u_threshold = rd32(val); break;
        case DEST_L_THRESH: if (n >= 4) dest->l_threshold = rd32(val); break;
        case DEST_ACTIVE_CONNS: if (n >= 4) stats->active_conns = rd32(val); break;
        case DEST_INACT_CONNS: if (n >= 4) stats->inact_conns = rd32(val); break;
        case DEST_PERSIST_CONNS: if (n >= 4) stats->persist_conns = rd32(val); break;
        case DEST_ADDR_FAMILY: if (n >= 2) dest->af = rd16(val); break;
        case DEST_TUN_TYPE: if (n >= 1) dest->tun_type = val[0]; break;
        case DEST_TUN_PORT: if (n >= 2) dest->tun_port = ntohs(rd16(val)); break;
        case DEST_TUN_FLAGS: if (n >= 2) dest->tun_flags = rd16(val); break;
        case DEST_STATS: st32 = val; st32len = n; break;
        case DEST_STATS64: st64 = val; st64len = n; break;
        default: break;
        }
    }
    if (st64)
        parse_stats(st64, st64len, stats);
    else if (st32)
        parse_stats(st32, st32len, stats);
    return 0;
}

int fk_ipvs_parse_daemon(const uint8_t *msg, size_t len, fk_ipvs_daemon *d)
{
    size_t nlen, n;
    uint16_t type;
    const uint8_t *val;
    const uint8_t *nest = find_top(msg, len, CMD_ATTR_DAEMON, &nlen);
    if (!nest)
        return -1;
    memset(d, 0, sizeof *d);
    FOR_EACH_ATTR(nest, nest + nlen, type, val, n) {
        switch (type) {
        case DAEMON_STATE: if (n >= 4) d->state = rd32(val); break;
        case DAEMON_MCAST_IFN: copy_str(d->mcast_ifn, sizeof d->mcast_ifn, val, n); break;
        case DAEMON_SYNC_ID: if (n >= 4) d->syncid = rd32(val); break;
        case DAEMON_SYNC_MAXLEN: if (n >= 2) d->sync_maxlen = rd16(val); break;
        case DAEMON_MCAST_GROUP:
            if (n >= 4) {
                d->mcast_af = AF_INET;
                copy_addr(d->mcast_group, val, 4);
            }
            break;
        case DAEMON_MCAST_GROUP6:
            if (n >= 16) {
                d->mcast_af = AF_INET6;
                copy_addr(d->mcast_group, val, 16);
            }
            break;
        case DAEMON_MCAST_PORT: if (n >= 2) d->mcast_port = ntohs(rd16(val)); break;
        case DAEMON_MCAST_TTL: if (n >= 1) d->mcast_ttl = val[0]; break;
        default: break;
        }
    }
    return 0;
}

static int parse_u32_attrs(const uint8_t *msg, size_t len, uint16_t first, size_t count,
                           uint32_t *out)
{
    uint16_t type;
    const uint8_t *val;
    size_t n;
    uint32_t mlen;
    memset(out, 0, count * sizeof *out);
    if (len < 20 || (mlen = rd32(msg)) < 20 || mlen > len)
        return -1;
    FOR_EACH_ATTR(msg + 20, msg + mlen, type, val, n) {
        if (type >= first && type < first + count && n >= 4)
            out[type - first] = rd32(val);
    }
    return 0;
}

int fk_ipvs_parse_config(const uint8_t *msg, size_t len, uint32_t *out)
{
    return parse_u32_attrs(msg, len, CMD_ATTR_TIMEOUT_TCP, 3, out);
}

int fk_ipvs_parse_info(const uint8_t *msg, size_t len, uint32_t *out)
{
    return parse_u32_attrs(msg, len, INFO_VERSION, 2, out);
}

int fk_genl_parse_family(const uint8_t *msg, size_t len, uint16_t *family)
{
    size_t n;
    const uint8_t *v = find_top(msg, len, CTRL_ATTR_FAMILY_ID_, &n);
    if (!v || n < 2)
        return -1;
    *family = rd16(v);
    return 0;
}

/* ---- single requests --------------------------------------------------------------- */

size_t fk_genl_build_getfamily(uint8_t *buf, size_t cap, uint32_t seq, uint32_t pid,
                               const char *name)
{
    uint8_t *p;
    if (cap < 20 + 4 + 20)
        return 0;
    p = msg_begin(buf, GENL_ID_CTRL_, NLM_F_REQUEST_ | NLM_F_ACK_, seq, pid,
                  CTRL_CMD_GETFAMILY_, 1);
    p = put_str(p, CTRL_ATTR_FAMILY_NAME_, name, 16);
    return msg_end(buf, p);
}

size_t fk_ipvs_build_simple(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                            uint32_t pid, uint8_t cmd, uint16_t flags)
{
    if (cap < 20)
        return 0;
    return msg_end(buf, msg_begin(buf, family, flags, seq, pid, cmd, IPVS_GENL_VERSION_));
}

size_t fk_ipvs_build_get_dests(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                               uint32_t pid, const fk_ipvs_service *svc)
{
    uint8_t *p, *nest;
    if (cap < MSG_MAX)
        return 0;
    /* REQUEST|ACK|DUMP (0x305), as ipvsadm. */
    p = msg_begin(buf, family, 0x305, seq, pid, 8, IPVS_GENL_VERSION_);
    nest = p;
    p = svc_key(p + 4, svc);
    p = nest_end(nest, p, CMD_ATTR_SERVICE);
    return msg_end(buf, p);
}

size_t fk_ipvs_build_set_config(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                                uint32_t pid, uint32_t tcp, uint32_t tcp_fin, uint32_t udp)
{
    uint8_t *p;
    if (cap < 20 + 3 * 8)
        return 0;
    p = msg_begin(buf, family, NLM_F_REQUEST_ | NLM_F_ACK_, seq, pid, 12, IPVS_GENL_VERSION_);
    if (tcp)
        p = put_u32(p, CMD_ATTR_TIMEOUT_TCP, tcp);
    if (tcp_fin)
        p = put_u32(p, CMD_ATTR_TIMEOUT_TCP_FIN, tcp_fin);
    if (udp)
        p = put_u32(p, CMD_ATTR_TIMEOUT_UDP, udp);
    return msg_end(buf, p);
}

size_t fk_ipvs_build_daemon(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
                            uint32_t pid, uint8_t cmd, const fk_ipvs_daemon *d)
{
    uint8_t *p, *nest;
    if (cap < MSG_MAX)
        return 0;
    p = msg_begin(buf, family, NLM_F_REQUEST_ | NLM_F_ACK_, seq, pid, cmd, IPVS_GENL_VERSION_);
    nest = p;
    p = put_u32(p + 4, DAEMON_STATE, d->state);
    if (cmd != CMD_DEL_DAEMON) {
        p = put_str(p, DAEMON_MCAST_IFN, d->mcast_ifn, sizeof d->mcast_ifn);
        p = put_u32(p, DAEMON_SYNC_ID, d->syncid);
        if (d->sync_maxlen)
            p = put_u16(p, DAEMON_SYNC_MAXLEN, d->sync_maxlen);
        if (d->mcast_af == AF_INET)
            p = put_bin(p, DAEMON_MCAST_GROUP, d->mcast_group, 4);
        else if (d->mcast_af == AF_INET6)
            p = put_bin(p, DAEMON_MCAST_GROUP6, d->mcast_group, 16);
        if (d->mcast_port)
            p = put_u16(p, DAEMON_MCAST_PORT, htons(d->mcast_port));
        if (d->mcast_ttl)
            p = put_u8(p, DAEMON_MCAST_TTL, d->mcast_ttl);
    }
    p = nest_end(nest, p, CMD_ATTR_DAEMON);
    return msg_end(buf, p);
}
