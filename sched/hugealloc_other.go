//go:build !linux

package sched

func allocTable[T, O any](owner *O, n int) []T { return make([]T, n) }
