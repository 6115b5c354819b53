team   = "from-auto-file"
mirror = "http://auto.example.org/debian"
