mirror = "https://varfile.example.org/debian"
