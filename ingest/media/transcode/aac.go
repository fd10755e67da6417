package transcode

import (
	"context"
	"fmt"
	"strconv"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// AACRate is the sample rate of the AAC that replay conversion makes,
// whatever the source's: 48 kHz keeps the encoder's delay (one frame of
// 1024 samples) at 21 ms.
const AACRate = 48000

// AACDelay is the AAC encoder's delay (priming) in samples at AACRate:
// the first AACDelay decoded samples come before the first input sample.
const AACDelay = 1024

// PCM describes raw LPCM samples.
type PCM struct {
	Rate         int
	Channels     int
	BitDepth     int // 16, 24 or 32
	LittleEndian bool
}

// Valid reports whether EncodeAAC takes p.
func (p PCM) Valid() bool {
	_, err := p.format()
	return err == nil
}

// format is ffmpeg's raw sample format of p (s16be, s24le, ...).
func (p PCM) format() (string, error) {
	switch p.BitDepth {
	case 16, 24, 32:
	default:
		return "", fmt.Errorf("LPCM of %d bits", p.BitDepth)
	}
	if p.Rate <= 0 || p.Channels <= 0 || p.Channels > 8 {
		return "", fmt.Errorf("LPCM of %d Hz, %d channels", p.Rate, p.Channels)
	}
	e := "be"
	if p.LittleEndian {
		e = "le"
	}
	return "s" + strconv.Itoa(p.BitDepth) + e, nil
}

// AACConfig is the configuration of the AAC that EncodeAAC makes of p
// (AAC-LC, AACRate, p's channels).
func AACConfig(p PCM) mpeg4audio.AudioSpecificConfig {
	return mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: AACRate, ChannelCount: p.Channels}
}

// EncodeAAC encodes LPCM samples to AAC-LC at AACRate: the access units
// (1024 samples each) in order, the first AACDelay samples of which are
// the encoder's delay.
func (f FFmpeg) EncodeAAC(ctx context.Context, p PCM, samples []byte) ([][]byte, error) {
	sf, err := p.format()
	if err != nil {
		return nil, fmt.Errorf("encode AAC: %w", err)
	}
	out, err := f.run(ctx, samples, "-f", sf, "-ar", strconv.Itoa(p.Rate), "-ac", strconv.Itoa(p.Channels), "-i", "pipe:0",
		"-c:a", "aac", "-b:a", strconv.Itoa(48000*p.Channels), "-ar", strconv.Itoa(AACRate), "-f", "adts", "pipe:1")
	if err != nil {
		return nil, fmt.Errorf("encode AAC: %w", err)
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(out); err != nil {
		return nil, fmt.Errorf("encode AAC: ffmpeg's ADTS: %w", err)
	}
	aus := make([][]byte, len(pkts))
	for i, pk := range pkts {
		if pk.SampleRate != AACRate || pk.ChannelCount != p.Channels {
			return nil, fmt.Errorf("encode AAC: ffmpeg made %d Hz, %d channels", pk.SampleRate, pk.ChannelCount)
		}
		aus[i] = pk.AU
	}
	return aus, nil
}
