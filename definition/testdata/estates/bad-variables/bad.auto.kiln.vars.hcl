undeclared_in_file = "x"
typed              = "still not a number"
