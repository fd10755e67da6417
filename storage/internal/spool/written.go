package spool

import (
	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/internal/chain"
)

// Written reports what a recording's spool has written since its part
// began (part 0: since the recording began): the part, its number of media
// segments and the last one's chain value (the part's genesis when there
// is none). The archive checks the index against it before sealing an
// ended recording.
func Written(dir string, rec uuid.UUID) (part int, segments uint64, last []byte, err error) {
	st, err := loadState(dir, rec)
	if err != nil {
		return 0, 0, nil, err
	}
	return st.Part, st.NextSeq - chain.PartSeq(st.Part), st.Chain, nil
}
