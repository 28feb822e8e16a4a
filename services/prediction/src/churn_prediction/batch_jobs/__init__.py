"""File batch jobs: a CSV or Parquet file scored in a child process, with durable progress."""
