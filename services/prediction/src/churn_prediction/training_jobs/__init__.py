"""Training jobs: fetch a training set, train off the event loop, register the result."""
