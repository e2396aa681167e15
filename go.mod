module github.com/anysched/anysched

go 1.26
