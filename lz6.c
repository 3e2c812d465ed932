#include <unbound.h>
#include <stdio.h>
int main(int argc,char**argv){struct ub_ctx*c=ub_ctx_create();
printf("cfg=%d\n",ub_ctx_config(c,"/tmp/u.conf"));
ub_ctx_set_fwd(c,argv[1]);
struct ub_result*r;int e=ub_resolve(c,argv[2],1,1,&r);
printf("%s err=%d rcode=%d nx=%d have=%d\n",argv[2],e,r->rcode,r->nxdomain,r->havedata);return 0;}
