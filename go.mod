module github.com/kiln-project/kiln

go 1.26
