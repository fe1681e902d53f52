module example.com/iadvize-token-reader

go 1.19
