"""Human annotation in Label Studio: serve, push samples as tasks, pull annotations back, consensus."""
