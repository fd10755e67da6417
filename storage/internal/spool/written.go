package spool

import "github.com/google/uuid"

// Written reports what a recording's spool has written since it began:
// the number of media segments (its next sequence number) and the last
// one's chain value (the chain's genesis when there is none). The archive
// checks the index against it before sealing an ended recording.
func Written(dir string, rec uuid.UUID) (segments uint64, last []byte, err error) {
	st, err := loadState(dir, rec)
	if err != nil {
		return 0, nil, err
	}
	return st.NextSeq, st.Chain, nil
}
