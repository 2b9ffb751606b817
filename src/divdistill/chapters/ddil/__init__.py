"""The DDIL chapter (DDIL Tables 3–5): the students' table and the training-distribution diagnostics."""
