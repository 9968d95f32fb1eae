"""The sheets of the walkthrough, one module per step of the maths (forward and backward side by
side), all planned through the shared helpers of `common`."""
