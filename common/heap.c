#include "heap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define REEXEC_MARK "LIANXIN_HEAP_REEXEC"

void heap_hugepages(char **argv)
{
    /* Once: the image run again finds the mark and goes on (whatever
     * glibc made of the variable). Not for a program run with privileges
     * (setuid, file capabilities): glibc drops tunables there. */
    if (getenv(REEXEC_MARK)) {
        unsetenv(REEXEC_MARK);
        return;
    }
    const char *cur = getenv("GLIBC_TUNABLES");
    if ((cur && strstr(cur, "glibc.malloc.hugetlb")) || getauxval(AT_SECURE))
        return;
    char *was = cur ? strdup(cur) : NULL, *val;
    if ((cur && !was)
        || asprintf(&val, "%s%sglibc.malloc.hugetlb=1", was ? was : "", was && *was ? ":" : "") < 0) {
        free(was);
        return;
    }
    if (setenv("GLIBC_TUNABLES", val, 1) == 0 && setenv(REEXEC_MARK, "1", 1) == 0)
        execv("/proc/self/exe", argv);
    /* Not run again (no /proc, say): on with the heap as it is. */
    unsetenv(REEXEC_MARK);
    if (was)
        setenv("GLIBC_TUNABLES", was, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    free(was);
    free(val);
}
