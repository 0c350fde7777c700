"""arnn: train, compare and understand stable recurrent networks."""
