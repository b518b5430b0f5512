"""The benchmark protocols: apply a match, build and check a submission zip, score one."""
