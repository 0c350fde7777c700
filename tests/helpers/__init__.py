"""What several test files share: the paths and the way runs start (runs), tiny data in real formats (data), a
training loop outside Lightning (training), and callbacks that break a run on purpose (faults)."""
