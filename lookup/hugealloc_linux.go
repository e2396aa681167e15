package lookup

import (
	"runtime"
	"syscall"
	"unsafe"
)

// allocTable returns a zeroed slice of n values of a pointer-free type T.
// Tables larger than a few huge pages are mapped directly and advised to
// use transparent huge pages: random lookups over tens of megabytes
// otherwise spend most of their time in TLB misses (and, in a VM, in
// two-dimensional page walks). Every page is faulted in before it returns.
// The mapping is released when owner is garbage collected.
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
	// Fault every page in now, while the table is being made: a first
	// touch later, on the packet path, would stall on zeroing (and
	// possibly compacting) a huge page.
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 0
	}
	runtime.AddCleanup(owner, func(m []byte) { _ = syscall.Munmap(m) }, mem)
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), n)
}
