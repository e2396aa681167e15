package sched

import (
	"runtime"
	"syscall"
	"unsafe"
)

// allocTable returns a zeroed slice of n values of a pointer-free type T.
// Tables larger than a few huge pages are mapped directly and advised to
// use transparent huge pages: random lookups over tens of megabytes
// otherwise spend most of their time in TLB misses (and, in a VM, in
// two-dimensional page walks). The mapping is released when owner is
// garbage collected.
func allocTable[T, O any](owner *O, n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero)) * n
	const huge = 2 << 20
	if size < 4*huge {
		return make([]T, n)
	}
	size = (size + huge - 1) &^ (huge - 1)
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return make([]T, n)
	}
	_ = syscall.Madvise(mem, syscall.MADV_HUGEPAGE)
	runtime.AddCleanup(owner, func(m []byte) { _ = syscall.Munmap(m) }, mem)
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), n)
}
