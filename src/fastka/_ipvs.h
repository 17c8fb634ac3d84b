/* fastka IPVS generic-netlink encoder: declarations shared by the C source and cffi. */
#ifndef FASTKA_IPVS_H
#define FASTKA_IPVS_H
#include <stddef.h>
#include <stdint.h>

/* ABI version of this module; bumped when a declaration changes. */
int fk_ipvs_abi_version(void);

#endif
