/* heap: the program's heap in transparent huge pages. A busy node
 * allocates and frees frame buffers, decoding blocks and LMDB's dirty
 * pages all the time, and the kernel maps that memory a 4 KiB page at a
 * time, each map a fault; in 2 MiB pages it is one fault where it was
 * 512. glibc asks the kernel for them (MADV_HUGEPAGE) when its tunable
 * glibc.malloc.hugetlb is 1, and reads its tunables only as a program
 * starts: so the program runs itself again, with the same process id,
 * with that set. In the five-node chain bench (tests/bench) the page
 * faults fell from about 200 to 30 per 1000 changes, and the steady-state
 * rate rose about 9% (CPU per change fell 11%), for about 20% more
 * anonymous memory under load (with one arena, see node_run). Where the
 * system allows huge pages only on advice (the usual default) this is
 * the advice; where it forbids them, nothing changes. An operator who
 * sets glibc.malloc.hugetlb (0 keeps 4 KiB pages) is left as set. */
#ifndef LX_HEAP_H
#define LX_HEAP_H

/* Before anything else in main (argv is main's): runs the program again
 * with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES; returns only when
 * it is not run again (set already, run with privileges, where glibc
 * drops tunables, or the image run again). */
void heap_hugepages(char **argv);

#endif
