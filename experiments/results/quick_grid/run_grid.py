import sys, time
sys.path.insert(0, 'experiments')
import _common as C
from knobsim.scaling import sweep as S
from knobsim.core import runtime
runtime.setup()
out = sys.argv[1]
sizes = [int(float(x)) for x in sys.argv[2].split(',')]
ds = [int(float(x)) for x in sys.argv[3].split(',')]
seeds = int(sys.argv[4])
pts = []
for b in sizes:
    for d in ds:
        pts += S.sweep_points([b], seeds, tokens=d, batch=16, seq=64)
t = time.perf_counter()
rows = C.run(pts, C.settings('quick'), __import__('pathlib').Path(out), True)
print('WALL', time.perf_counter() - t)
