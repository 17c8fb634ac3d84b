/* fastka IPVS generic-netlink encoder (filled in by the IPVS issue). */
#include "_ipvs.h"

int fk_ipvs_abi_version(void)
{
    return 1;
}
