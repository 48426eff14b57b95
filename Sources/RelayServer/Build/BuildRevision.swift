// Written over by the image build (Deploy/Dockerfile) with the commit being built; keep it one line.
let buildRevision = "unknown"
