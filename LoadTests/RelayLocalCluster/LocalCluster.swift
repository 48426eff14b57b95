// Placeholder: local process management moves here (issue 4).
