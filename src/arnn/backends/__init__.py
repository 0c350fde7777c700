"""How a recurrence is executed: a readable autograd reference and fast manual-backward scans."""
