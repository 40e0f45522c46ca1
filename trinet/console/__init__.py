"""What every command shares: the log format, console logging, a quiet TensorFlow import, `run_main`, and the
argparse types that check values at the boundary (no TensorFlow).
"""
