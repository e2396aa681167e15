//go:build !linux

package lookup

func allocTable[T, O any](owner *O, n int) []T { return make([]T, n) }
