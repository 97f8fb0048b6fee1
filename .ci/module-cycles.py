#!/usr/bin/env python3
"""Import cycles between the top-level modules of one crate: `python3 .ci/module-cycles.py service/src`.

Reads every `crate::...` path (imports and uses, comments and test modules left out, root
re-exports resolved through lib.rs), builds the graph of top-level modules, and prints it with
its strongly connected components of more than one module. Exits 1 when there is a cycle.
"""
import re,os,sys
root=sys.argv[1]
mods={}
lib=open(os.path.join(root,'lib.rs')).read()
reexp={}
for m in re.finditer(r'pub use ([a-z_]+)::\{([^}]*)\}', lib):
    for item in m.group(2).split(','):
        item=item.strip().split(' as ')[-1]
        if item: reexp[item]=m.group(1)
for m in re.finditer(r'pub use ([a-z_]+)::([A-Za-z_]+);', lib):
    reexp[m.group(2)]=m.group(1)
for dp,dn,fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f)
        rel=os.path.relpath(p,root)[:-3]
        parts=rel.split('/')
        if parts[-1] in ('mod','lib'): parts=parts[:-1]
        name='::'.join(parts) or 'crate'
        src=open(p).read()
        # drop test modules
        src=re.sub(r'#\[cfg\(test\)\]\s*mod tests \{.*', '', src, flags=re.S)
        src=re.sub(r'//[^\n]*', '', src)
        deps=set()
        for m in re.finditer(r'crate::([A-Za-z_]+)', src):
            deps.add(reexp.get(m.group(1), m.group(1)))
        for m in re.finditer(r'crate::\{([^}]*)\}', src):
            for item in m.group(1).split(','):
                item=item.strip()
                if item:
                    first=item.split('::')[0]
                    deps.add(reexp.get(first, first))
        # super:: refs
        if 'super::' in src and len(parts)>1:
            deps.add(parts[0])
        mods[name]=deps
# collapse to top-level modules
top={}
for name,deps in mods.items():
    t=name.split('::')[0]
    top.setdefault(t,set()).update(d for d in deps if d!=t)
# only known modules
known=set(top)
for t in top: top[t]&=known
# find cycles (SCCs)
idx={};low={};st=[];on=set();out=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in top[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        out.append(comp)
for v in top:
    if v not in idx: sc(v)
cyc=[c for c in out if len(c)>1]
for t in sorted(top): print(t,'->',sorted(top[t]))
print('cycles:',cyc)
sys.exit(1 if cyc else 0)
