package storage

const crashChildEnv = "BWC_ARCHIVE_CRASH_CHILD"

func crashChild() int { return 2 }
