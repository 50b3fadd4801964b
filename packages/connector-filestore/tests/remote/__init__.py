"""S3 and SFTP tests (a package, so that this conftest does not shadow ../conftest.py as `conftest`)."""
