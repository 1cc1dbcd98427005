import csv, numpy as np, sys
from knobsim import scaling
rows = list(csv.DictReader(open(sys.argv[1]+'/results.csv')))
nmin = float(sys.argv[2]) if len(sys.argv)>2 else 0
rows = [r for r in rows if float(r['n_params_total'])>=nmin]
n=np.array([float(r['n_params_total']) for r in rows]); d=np.array([float(r['tokens']) for r in rows]); l=np.array([float(r['final_eval_loss']) for r in rows])
for a,b,c,r in zip(n,d,l,rows): print(int(a), int(b), r['seed'], round(c,4), r['wall_s'][:6])
f=scaling.fit_chinchilla(n,d,l,bootstrap=100)
print('joint E %.4f'%f.E, f.ci.get('E'), 'alpha %.3f'%f.alpha, f.ci.get('alpha'), 'beta %.3f'%f.beta, f.ci.get('beta'), 'r2 %.4f'%f.r2, 'floor', rows[0]['entropy_floor'])
