#!/usr/bin/env python3
"""An exec pipeline worker skeleton in Python with PyAV: where a model goes.

    pip install av numpy
    LIVE_AI_PIPELINE="exec:python3 examples/workers/pyav-worker.py" cargo run -p livegate

livegate writes the stream's MPEG-TS (H.264 + Opus) to stdin and reads MPEG-TS from stdout;
stderr is its log. It sets LIVE_AI_STREAM_KEY, and LIVE_AI_PIPELINE_PARAMS (JSON) when the
stream has parameters. The worker is killed with its stream and restarted if it crashes, so
it only has to process frames until stdin ends.

What the output must be for WebRTC viewers: H.264 constrained baseline without B-frames
(one frame in, one frame out) and Opus at 48 kHz. Timestamps are kept (each output frame has
its input frame's PTS, audio is retimed from its samples), so the gateway can measure the
pipeline's latency by video PTS.
"""

import json
import os
import sys

import av  # PyAV: FFmpeg's demuxers, decoders and encoders


def load_model(params):
    """Load the model once, at start-up. Replace with your own (weights from local disk)."""
    return None


def transform(model, image):
    """The model's work on one frame: an RGB numpy array in, an RGB numpy array out of the
    same size. This placeholder inverts the colours."""
    return 255 - image


def main():
    stream_key = os.environ.get("LIVE_AI_STREAM_KEY", "?")
    params = json.loads(os.environ.get("LIVE_AI_PIPELINE_PARAMS") or "{}")
    print(f"pyav worker for stream {stream_key}, params {params}", file=sys.stderr, flush=True)
    model = load_model(params)

    # Small probe: start on the first keyframe instead of buffering seconds of input.
    source = av.open(sys.stdin.buffer, format="mpegts", mode="r",
                     options={"probesize": "32768", "analyzeduration": "200000"})
    sink = av.open(sys.stdout.buffer, format="mpegts", mode="w",
                   options={"muxdelay": "0", "muxpreload": "0", "flush_packets": "1"})

    in_video = next(iter(source.streams.video), None)
    in_audio = next(iter(source.streams.audio), None)
    out_video = out_audio = None
    if in_video is not None:
        out_video = sink.add_stream("libx264", rate=in_video.average_rate or 30)
        out_video.width = in_video.codec_context.width
        out_video.height = in_video.codec_context.height
        out_video.pix_fmt = "yuv420p"
        out_video.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0",
                             "g": "30", "profile": "baseline"}
        # The encoder counts in the input's 90 kHz ticks, not in frames of `rate`: a frame
        # keeps its exact PTS (rounded to 1/30 s it would no longer match its input frame).
        out_video.time_base = in_video.time_base
        out_video.codec_context.time_base = in_video.time_base
    if in_audio is not None:
        out_audio = sink.add_stream("libopus", rate=48000)
        out_audio.layout = "stereo"

    wanted = [s for s in (in_video, in_audio) if s is not None]
    for packet in source.demux(wanted):
        for frame in packet.decode():
            if packet.stream is in_video:
                image = transform(model, frame.to_ndarray(format="rgb24"))
                out = av.VideoFrame.from_ndarray(image, format="rgb24")
                out.pts, out.time_base = frame.pts, frame.time_base
                sink.mux(out_video.encode(out))
            else:
                # Audio passes through the encoder unchanged; a voice model would go here.
                frame.pts = None  # let the encoder time Opus frames from the samples
                sink.mux(out_audio.encode(frame))

    for out_stream in (out_video, out_audio):
        if out_stream is not None:
            sink.mux(out_stream.encode(None))
    sink.close()


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # livegate closed our stdout or stopped the stream: nothing left to do
