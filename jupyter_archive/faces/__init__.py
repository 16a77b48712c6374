"""HTTP faces: each translates one published API to calls on the core Archive."""
